"""Finding the newest checkpoint that was written completely.

`Trainer` writes a checkpoint's files in place and `trainer_state.json` last, so a process killed while
saving leaves a folder without a parseable state file (truncated JSON never parses). Resuming picks the
newest folder whose state file parses, names its own step and sits beside every required file.
"""

import json
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def checkpoint_is_complete(folder: Path, required_files: tuple[str, ...] = ()) -> bool:
    match = CHECKPOINT_PATTERN.match(folder.name)
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    if match is None or state.get("global_step") != int(match.group(1)):
        return False
    if not any((folder / name).exists() for name in WEIGHT_FILES):
        return False
    return all((folder / name).exists() for name in required_files)


def last_complete_checkpoint(output_dir: str | Path, required_files: tuple[str, ...] = ()) -> str | None:
    """The newest complete `checkpoint-N` folder of `output_dir` (incomplete newer ones are reported)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    folders = sorted(
        (p for p in output_dir.iterdir() if p.is_dir() and CHECKPOINT_PATTERN.match(p.name)),
        key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)), reverse=True,
    )
    for folder in folders:
        if checkpoint_is_complete(folder, required_files):
            return str(folder)
        logger.warning("Ignoring %s: it was not written completely (interrupted while saving).", folder)
    return None
