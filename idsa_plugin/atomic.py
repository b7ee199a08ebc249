"""Atomic file output: write beside the target, rename on success, never leave half a file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


class OutputExistsError(FileExistsError):
    """The target exists and overwriting was not asked for."""


def check_target(target: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing target unless ``overwrite``; return it as a Path."""
    path = Path(target)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` that replaces it only if the block succeeds."""
    path = check_target(target, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 (and some writers, safetensors among them, recreate the file with it):
        # the result gets a normal new file's mode
        os.chmod(tmp_path, 0o666 & ~_umask())
        if not overwrite and path.exists():
            raise OutputExistsError(f"{path} appeared while writing; not overwritten")
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
