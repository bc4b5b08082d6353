"""Paths read from a folder (a model folder's listings, a dataset's label.csv, a run's plots) stay in that folder:
`..`, absolute names and symlinks that lead out are refused with an error naming the file."""

import os
import shutil
from pathlib import Path


class PathOutsideFolderError(ValueError):
    """A name read from a folder's own files resolves outside that folder."""


def path_inside(folder: str | os.PathLike, name: str | os.PathLike, what: str) -> Path:
    """`folder / name` with symlinks resolved, or `PathOutsideFolderError` (naming `what`, e.g. "label.csv line 3,
    column video_id") when it lies outside `folder` (after resolving `folder`'s own symlinks)."""
    root = Path(folder).resolve()
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise PathOutsideFolderError(
            f"{what}: {str(name)!r} leads outside {folder} (to {target}); names must stay inside the folder "
            "(no '..', no absolute path, no symlink that leaves it)."
        )
    return target


def copy_folder_inside(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """`shutil.copytree(source, target)` where every entry (symlinks followed) lies inside `source`; a symlink that
    leaves it is refused before anything is copied, naming it. Links are copied as the files they point to."""
    source = Path(source)
    for directory, folders, files in os.walk(source, followlinks=False):
        for name in folders + files:
            entry = Path(directory) / name
            if entry.is_symlink():
                path_inside(source, entry.relative_to(source), f"{entry} (a symlink)")
    shutil.copytree(source, target, symlinks=False)


def copy_file_inside(file: str | os.PathLike, folder: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy `file`, which must lie inside `folder` once symlinks are resolved, to `target`."""
    shutil.copyfile(path_inside(folder, os.path.abspath(file), str(file)), target)


__all__ = ["PathOutsideFolderError", "copy_file_inside", "copy_folder_inside", "path_inside"]
