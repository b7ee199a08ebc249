"""Atomic file output: write beside the target, rename on success, never leave half a file."""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
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


def _create_temporary(path: Path) -> tuple[Path, int]:
    """Create an empty file beside ``path``; return it and the mode the system gave it.

    It is created like any new file (0666 less the umask), so its mode is the one a normal write
    would have produced: found without changing the process umask, which other threads share.
    """
    while True:
        candidate = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate, stat.S_IMODE(os.stat(candidate).st_mode)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` that replaces it only if the block succeeds."""
    path = check_target(target, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path, new_file_mode = _create_temporary(path)
    try:
        yield tmp_path
        os.chmod(tmp_path, new_file_mode)  # some writers (safetensors) recreate the file as 0600
        if not overwrite and path.exists():
            raise OutputExistsError(f"{path} appeared while writing; not overwritten")
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
