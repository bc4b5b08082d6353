"""Raw-media layouts: CH-SIMS / MMSA-FET custom datasets (label.csv + Raw/) and AMI meetings.

These readers index media (paths, times, transcripts, labels); `processing_msa` turns the media into
features. Missing or unreadable files raise an error naming the path, or with `on_error="skip"` are
skipped and reported.
"""

import csv
import logging
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from datasets import Dataset, DatasetDict, Features, Value

from .arrow_cache import empty_dataset
from .safe_paths import path_inside

logger = logging.getLogger(__name__)
LABEL_CSV_COLUMNS = ("video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode")
MODE_TO_SPLIT = {"train": "train", "valid": "validation", "validation": "validation", "test": "test"}
NITE_ID = "{http://nite.sourceforge.net/}id"


def verify_media(path: Path, need_video: bool = True, need_audio: bool = True) -> None:
    """Open `path` with PyAV and check its streams; raises ValueError naming the file."""
    import av

    try:
        with av.open(str(path)) as container:
            kinds = {stream.type for stream in container.streams}
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{path} is not a readable media file ({error}).") from error
    if need_video and "video" not in kinds:
        raise ValueError(f"{path} has no video stream.")
    if need_audio and "audio" not in kinds:
        raise ValueError(f"{path} has no audio stream.")


def _label(row: dict, column: str, table: Path, line: int, bounds: tuple[float, float] | None) -> float | None:
    """The number in `column` (None when empty); errors name the file, line and column."""
    value = (row.get(column) or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{table} line {line}, column {column}: {value!r} is not a number.") from None
    if not np.isfinite(number):
        raise ValueError(f"{table} line {line}, column {column}: {value!r} is not a finite number.")
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise ValueError(f"{table} line {line}, column {column}: {number:g} lies outside [{bounds[0]:g}, {bounds[1]:g}] "
                         "(SIMS labels lie in [-1, 1], MOSI/MOSEI-style labels in [-3, 3]).")
    return number


def read_label_csv(table: Path) -> list[dict]:
    """The rows of a label.csv: UTF-8, with or without the BOM Excel writes; other encodings are refused with
    the byte offset of the first undecodable byte."""
    try:
        with table.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fieldnames = [name.strip() for name in reader.fieldnames or ()]
            reader.fieldnames = fieldnames
            rows = list(reader)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{table} is not UTF-8 text (byte {error.start}: {error.object[error.start:error.start + 1]!r}); "
            "save it as UTF-8 (e.g. 'CSV UTF-8' in Excel, or `iconv -f GBK -t UTF-8`)."
        ) from None
    except csv.Error as error:
        raise ValueError(f"{table} is not a readable CSV file ({error}).") from None
    missing = {"video_id", "clip_id", "text"} - set(fieldnames)
    if missing:
        raise ValueError(f"{table} lacks columns {sorted(missing)}; has {fieldnames}.")
    return rows


def load_label_csv_layout(
    data_dir: str | Path, verify: bool = False, on_error: str = "error", require_labels: bool = True,
    label_range: tuple[float, float] | None = None,
) -> DatasetDict:
    """`<data_dir>/label.csv` (MMSA-FET columns) + `<data_dir>/Raw/<video_id>/<clip_id>.mp4` as splits by `mode`
    (rows without a mode go to "train"). Columns: id (`video_id$_$clip_id`), raw_text, video_path, label,
    label_T/label_A/label_V (None where absent), annotation.

    label.csv columns: `video_id`, `clip_id`, `text` (the transcript) are required; `label` is the sentiment
    intensity (a number; empty = unlabelled, allowed when `require_labels=False`), `label_T`/`label_A`/`label_V`
    optional unimodal labels, `annotation` free text, and `mode` one of train / valid (or validation) / test
    (empty = train). UTF-8, with or without a BOM. Labels must be finite numbers inside `label_range` when it is
    given; a (video_id, clip_id) pair may appear once. A bad row raises an error naming the line and column, or
    with `on_error="skip"` is skipped and reported."""
    if on_error not in ("error", "skip"):
        raise ValueError(f"on_error must be 'error' or 'skip', got {on_error!r}.")
    data_dir = Path(data_dir)
    table = data_dir / "label.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} does not exist (expected label.csv with columns {LABEL_CSV_COLUMNS}).")
    rows = read_label_csv(table)
    splits: dict[str, list[dict]] = {}
    problems = []
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        sample_id = f"{row['video_id']}$_${row['clip_id']}"
        if sample_id in first_line:
            raise ValueError(f"{table} line {line}: video_id/clip_id {row['video_id']}/{row['clip_id']} already "
                             f"appears on line {first_line[sample_id]}; each clip may have one row (one label).")
        first_line[sample_id] = line
        video = data_dir / "Raw" / row["video_id"] / f"{row['clip_id']}.mp4"
        try:
            path_inside(data_dir / "Raw", Path(row["video_id"]) / f"{row['clip_id']}.mp4",
                        f"{table} line {line}, columns video_id/clip_id")
            if not video.is_file():
                raise FileNotFoundError(f"{video} does not exist (label.csv line {line}; expected Raw/<video_id>/<clip_id>.mp4).")
            if verify:
                verify_media(video)
            labels = {column: _label(row, column, table, line, label_range)
                      for column in ("label", "label_T", "label_A", "label_V")}
            if require_labels and labels["label"] is None:
                raise ValueError(f"{table} line {line}, column label: empty label for {row['video_id']}/{row['clip_id']}.")
            split = MODE_TO_SPLIT.get((row.get("mode") or "train").strip().lower())
            if split is None:
                raise ValueError(f"{table} line {line}, column mode: {row.get('mode')!r} is not train/valid/test.")
        except (FileNotFoundError, ValueError) as error:
            if on_error == "error":
                raise
            problems.append(str(error))
            continue
        splits.setdefault(split, []).append({
            "id": sample_id, "raw_text": row["text"], "video_path": str(video), **labels,
            "annotation": row.get("annotation") or "",
        })
    if problems:
        logger.warning("%s: skipped %d rows:\n  %s", table, len(problems), "\n  ".join(problems))
    features = Features({"id": Value("string"), "raw_text": Value("string"), "video_path": Value("string"),
                         "label": Value("float32"), "label_T": Value("float32"), "label_A": Value("float32"),
                         "label_V": Value("float32"), "annotation": Value("string")})
    return DatasetDict({name: Dataset.from_list(items, features=features) for name, items in splits.items()})


def _seconds(element, attribute: str, source: Path) -> float:
    value = element.get(attribute)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (np.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{source}: element {element.get(NITE_ID) or element.tag!r}, field {attribute}: "
                         f"{value!r} is not a time in seconds.")
    return seconds


def _xml_root(path: Path):
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} is not valid NXT XML ({error}).") from error


def _words(words_file: Path) -> list[tuple[float, float, str]]:
    words = []
    for element in _xml_root(words_file):
        if element.tag == "w" and element.get("starttime") and element.get("endtime"):
            words.append((_seconds(element, "starttime", words_file), _seconds(element, "endtime", words_file),
                          (element.text or "").strip()))
    return words


def _segments(root, segments_file: Path, min_duration: float) -> list[tuple[float, float]]:
    """(start, end) of each transcriber segment at least `min_duration` long; errors name file, segment, field."""
    spans = []
    for segment in root.iter("segment"):
        start = _seconds(segment, "transcriber_start", segments_file)
        end = _seconds(segment, "transcriber_end", segments_file)
        if end < start:
            raise ValueError(f"{segments_file}: element {segment.get(NITE_ID)!r}: transcriber_end {end} lies before "
                             f"transcriber_start {start}.")
        if end - start >= min_duration:
            spans.append((start, end))
    return spans


def load_ami(
    corpus_dir: str | Path, annotations_dir: str | Path, meetings: list[str] | None = None,
    min_duration: float = 0.5, on_error: str = "error",
) -> DatasetDict:
    """AMI meetings cut into per-speaker utterance clips, as one `unlabeled` split.

    Layout: `<corpus_dir>/<meeting>/audio/<meeting>.Headset-<n>.wav`, `<corpus_dir>/<meeting>/video/
    <meeting>.Closeup<n+1>.avi` and NXT annotations `<annotations_dir>/segments/<meeting>.<X>.segments.xml`,
    `<annotations_dir>/words/<meeting>.<X>.words.xml`; speaker letter X = A, B, C, D is headset n = 0..3.
    Each transcriber segment of at least `min_duration` seconds is a clip `<meeting>_<X>_<start in cs>`
    (e.g. ES2007b_B_131179) with its words as raw_text.
    """
    if on_error not in ("error", "skip"):
        raise ValueError(f"on_error must be 'error' or 'skip', got {on_error!r}.")
    corpus_dir, annotations_dir = Path(corpus_dir), Path(annotations_dir)
    segments_dir = annotations_dir / "segments"
    if not segments_dir.is_dir():
        raise FileNotFoundError(f"{segments_dir} does not exist (expected NXT segments/<meeting>.<X>.segments.xml).")
    clips, problems, seen = [], [], set()
    for segments_file in sorted(segments_dir.glob("*.segments.xml")):
        meeting, speaker = segments_file.name.split(".")[:2]
        if meetings is not None and meeting not in meetings:
            continue
        try:
            if len(speaker) != 1 or not "A" <= speaker <= "Z":  # before `ord(speaker)` below
                raise ValueError(f"{segments_file}: expected <meeting>.<speaker letter>.segments.xml, got speaker "
                                 f"{speaker!r}.")
            channel = ord(speaker) - ord("A")
            audio = corpus_dir / meeting / "audio" / f"{meeting}.Headset-{channel}.wav"
            video = corpus_dir / meeting / "video" / f"{meeting}.Closeup{channel + 1}.avi"
            words_file = annotations_dir / "words" / f"{meeting}.{speaker}.words.xml"
            for path in (audio, video, words_file):
                path_inside(corpus_dir if path is not words_file else annotations_dir, path.absolute(),
                            f"AMI speaker {speaker} of {meeting}")  # no symlink out of the corpus
                if not path.is_file():
                    raise FileNotFoundError(f"{path} does not exist (AMI speaker {speaker} of {meeting}).")
            spans, words = _segments(_xml_root(segments_file), segments_file, min_duration), _words(words_file)
        except (FileNotFoundError, ValueError) as error:
            if on_error == "error":
                raise
            problems.append(str(error))
            continue
        for start, end in spans:
            clip_id = f"{meeting}_{speaker}_{int(round(start * 100))}"
            if clip_id in seen:  # two segments starting in the same centisecond: one clip
                logger.warning("%s: a second segment starts at %.2f s; kept the first as %s.", segments_file, start,
                               clip_id)
                continue
            seen.add(clip_id)
            text = " ".join(w for s, e, w in words if s >= start - 1e-6 and e <= end + 1e-6 and w)
            clips.append({
                "id": clip_id, "raw_text": text, "audio_path": str(audio),
                "video_path": str(video), "start": start, "end": end, "meeting": meeting, "speaker": speaker,
                "label": None,
            })
    if problems:
        logger.warning("AMI: skipped %d speakers:\n  %s", len(problems), "\n  ".join(problems))
    features = Features({"id": Value("string"), "raw_text": Value("string"), "audio_path": Value("string"),
                         "video_path": Value("string"), "start": Value("float32"), "end": Value("float32"),
                         "meeting": Value("string"), "speaker": Value("string"), "label": Value("float32")})
    return DatasetDict({"unlabeled": Dataset.from_list(clips, features=features) if clips else empty_dataset(features)})
