"""The transcoder's one error type and its one-line messages."""
from __future__ import annotations

import errno
import logging
import os

log = logging.getLogger("idsa_plugin")


class TranscodeError(RuntimeError):
    """A problem with the input, the output or the settings, said in one line."""


def message(exc: BaseException) -> str:
    """``exc`` as one line (an OSError by its ``strerror``)."""
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says that the disk is full."""
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def bad_input(src: str | os.PathLike, problem: str, on_error: str) -> None:
    """A corrupt or truncated source: an error with ``on_error="fail"``, a notice with ``"skip"``."""
    if on_error == "fail":
        raise TranscodeError(f"{src}: corrupt or truncated video: {problem} (--on-error skip transcodes what decodes)")
    log.warning("%s: %s; transcoding what decodes", src, problem)
