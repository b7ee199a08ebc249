"""Atomic output: a normal new file's mode, and no change to the process umask that other threads see."""
from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from idsa_plugin.atomic import OutputExistsError, atomic_path

UMASK = 0o027


@pytest.fixture
def umask():
    previous = os.umask(UMASK)
    yield UMASK
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_result_gets_a_new_files_mode_even_after_a_private_rewrite(tmp_path, umask):
    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors does
        os.write(fd, b"data")
        os.close(fd)
    assert target.read_bytes() == b"data"
    assert mode(target) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failed_block_leaves_nothing_and_existing_target_is_kept(tmp_path, umask):
    target = tmp_path / "out.txt"
    target.write_text("before")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    with pytest.raises(OutputExistsError):
        with atomic_path(target, overwrite=False):
            pass
    assert target.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_files_other_threads_create_meanwhile_keep_the_umask(tmp_path, umask):
    """A thread creating files while atomic writes run must never see the umask at 0 (fault 3)."""
    created, stop = tmp_path / "other", threading.Event()
    created.mkdir()

    def create_files() -> None:
        count = 0
        while not stop.is_set():
            (created / f"{count % 50}.txt").unlink(missing_ok=True)
            (created / f"{count % 50}.txt").write_bytes(b"")
            if mode(created / f"{count % 50}.txt") != 0o666 & ~umask:
                loose.append(count)
            count += 1

    loose: list[int] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=create_files)
    thread.start()
    try:
        for i in range(3000):
            with atomic_path(tmp_path / "result.txt") as tmp:
                tmp.write_text(str(i))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert loose == [], f"{len(loose)} files created with a umask other than {umask:o}"
    assert (tmp_path / "result.txt").read_text() == "2999"
