"""train.py run inside the test process (no interpreter start-up per run) where no process boundary is tested."""

import contextlib
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_script():
    """train.py as a module (it lives at the repository root, outside the packages)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import train

    return train


def run_train_script(*argv: str, cwd) -> str:
    """`train.py ARGV` run from `cwd`; returns what it printed. Errors propagate (SystemExit with the message)."""
    train = train_script()
    printed = io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(printed):
            train.main(list(argv))
    finally:
        os.chdir(previous)
    return printed.getvalue()
