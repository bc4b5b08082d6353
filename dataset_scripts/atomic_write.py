"""Files that are either whole or absent: written under a temporary name beside the target, then renamed onto it."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path in `path`'s folder to write the file to; when the block ends without an error it is
    renamed onto `path` (`os.replace`, atomic on one file system), otherwise removed. A crash mid-write leaves `path`
    as it was, never half-written. The folder is created if missing. The name is unique per call (concurrent
    writers, ranks or threads, never share one), hidden, and ends in `.tmp`, so a leftover never matches a pattern
    such as `*.parquet`: writers that go by the suffix must be told the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`Path.write_text`, atomically (see `atomic_path`)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def staging_folder(parent: str | os.PathLike, prefix: str) -> Path:
    """A new hidden folder in `parent` to build something in before renaming it into place, with the permissions an
    ordinary `mkdir` gives under the user's umask (`tempfile.mkdtemp` makes it 0700, which the renamed folder keeps)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    return folder


__all__ = ["atomic_path", "staging_folder", "write_text_atomic"]
