"""Raw-media layouts: CH-SIMS / MMSA-FET custom datasets (label.csv + Raw/) and AMI meetings.

These readers index media (paths, times, transcripts, labels); `processing_msa` turns the media into
features. Missing or unreadable files raise an error naming the path, or with `on_error="skip"` are
skipped and reported.
"""

import csv
import logging
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value

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


def _float_or_none(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def load_label_csv_layout(
    data_dir: str | Path, verify: bool = False, on_error: str = "error", require_labels: bool = True
) -> DatasetDict:
    """`<data_dir>/label.csv` (MMSA-FET columns) + `<data_dir>/Raw/<video_id>/<clip_id>.mp4` as splits by `mode`
    (rows without a mode go to "train"). Columns: id (`video_id$_$clip_id`), raw_text, video_path, label,
    label_T/label_A/label_V (None where absent), annotation."""
    if on_error not in ("error", "skip"):
        raise ValueError(f"on_error must be 'error' or 'skip', got {on_error!r}.")
    data_dir = Path(data_dir)
    table = data_dir / "label.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} does not exist (expected label.csv with columns {LABEL_CSV_COLUMNS}).")
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"video_id", "clip_id", "text"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{table} lacks columns {sorted(missing)}; has {reader.fieldnames}.")
        rows = list(reader)
    splits: dict[str, list[dict]] = {}
    problems = []
    for line, row in enumerate(rows, start=2):
        video = data_dir / "Raw" / row["video_id"] / f"{row['clip_id']}.mp4"
        try:
            if not video.is_file():
                raise FileNotFoundError(f"{video} does not exist (label.csv line {line}; expected Raw/<video_id>/<clip_id>.mp4).")
            if verify:
                verify_media(video)
            label = _float_or_none(row.get("label"))
            if require_labels and label is None:
                raise ValueError(f"{table} line {line}: empty label for {row['video_id']}/{row['clip_id']}.")
        except (FileNotFoundError, ValueError) as error:
            if on_error == "error":
                raise
            problems.append(str(error))
            continue
        split = MODE_TO_SPLIT.get((row.get("mode") or "train").strip().lower())
        if split is None:
            raise ValueError(f"{table} line {line}: mode {row.get('mode')!r} is not train/valid/test.")
        splits.setdefault(split, []).append({
            "id": f"{row['video_id']}$_${row['clip_id']}", "raw_text": row["text"], "video_path": str(video),
            "label": label, "label_T": _float_or_none(row.get("label_T")), "label_A": _float_or_none(row.get("label_A")),
            "label_V": _float_or_none(row.get("label_V")), "annotation": row.get("annotation") or "",
        })
    if problems:
        logger.warning("%s: skipped %d rows:\n  %s", table, len(problems), "\n  ".join(problems))
    features = Features({"id": Value("string"), "raw_text": Value("string"), "video_path": Value("string"),
                         "label": Value("float32"), "label_T": Value("float32"), "label_A": Value("float32"),
                         "label_V": Value("float32"), "annotation": Value("string")})
    return DatasetDict({name: Dataset.from_list(items, features=features) for name, items in splits.items()})


def _words(words_file: Path) -> list[tuple[float, float, str]]:
    words = []
    for element in ElementTree.parse(words_file).getroot():
        if element.tag == "w" and element.get("starttime") and element.get("endtime"):
            words.append((float(element.get("starttime")), float(element.get("endtime")), (element.text or "").strip()))
    return words


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
    clips, problems = [], []
    for segments_file in sorted(segments_dir.glob("*.segments.xml")):
        meeting, speaker = segments_file.name.split(".")[:2]
        if meetings is not None and meeting not in meetings:
            continue
        channel = ord(speaker) - ord("A")
        audio = corpus_dir / meeting / "audio" / f"{meeting}.Headset-{channel}.wav"
        video = corpus_dir / meeting / "video" / f"{meeting}.Closeup{channel + 1}.avi"
        words_file = annotations_dir / "words" / f"{meeting}.{speaker}.words.xml"
        try:
            for path in (audio, video, words_file):
                if not path.is_file():
                    raise FileNotFoundError(f"{path} does not exist (AMI speaker {speaker} of {meeting}).")
            root = ElementTree.parse(segments_file).getroot()
        except ElementTree.ParseError as error:
            if on_error == "error":
                raise ValueError(f"{segments_file} is not valid NXT XML ({error}).") from error
            problems.append(f"{segments_file}: {error}")
            continue
        except FileNotFoundError as error:
            if on_error == "error":
                raise
            problems.append(str(error))
            continue
        words = _words(words_file)
        for segment in root.iter("segment"):
            start, end = float(segment.get("transcriber_start")), float(segment.get("transcriber_end"))
            if end - start < min_duration:
                continue
            text = " ".join(w for s, e, w in words if s >= start - 1e-6 and e <= end + 1e-6 and w)
            clips.append({
                "id": f"{meeting}_{speaker}_{int(round(start * 100))}", "raw_text": text, "audio_path": str(audio),
                "video_path": str(video), "start": start, "end": end, "meeting": meeting, "speaker": speaker,
                "label": None,
            })
    if problems:
        logger.warning("AMI: skipped %d speakers:\n  %s", len(problems), "\n  ".join(problems))
    features = Features({"id": Value("string"), "raw_text": Value("string"), "audio_path": Value("string"),
                         "video_path": Value("string"), "start": Value("float32"), "end": Value("float32"),
                         "meeting": Value("string"), "speaker": Value("string"), "label": Value("float32")})
    return DatasetDict({"unlabeled": Dataset.from_list(clips, features=features)})
