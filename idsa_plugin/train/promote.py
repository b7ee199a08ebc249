"""Promotion of trained weights: a candidate replaces the shipped file only if it beats it on Set5 and Set14
and holds up on synthetic patterns.

B100 is never used here: it stays for the final table. The patterns (noise, pixel checkerboards and stripes,
:func:`~idsa_plugin.evaluate.pattern_probes`) catch weights that are fine on photographs and wreck other
content: on each, the candidate may not score below both the landed weights and bicubic by more than
``PATTERN_TOLERANCE_DB`` (3 dB: IMDN's official weights score up to 1.7 dB below bicubic there, the
step-7129 idsa-net x4 of session 8 3.9-6.8 dB below, measured with the bound). The promoted file records
the scores measured here, so the metadata always says what ``idsa-sr eval`` measures.
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from ..evaluate import PATTERN_METRICS, bicubic_upscaler, model_upscaler, pattern_scores, psnr_key, set_and_pattern_metrics
from ..models import load_model
from ..weights_io import metadata_json, read_weights, write_weights

log = logging.getLogger("idsa_plugin.train")
SELECTION_SETS = ("Set5", "Set14")
PATTERN_TOLERANCE_DB = 3.0


def selection_scores(weights: str | os.PathLike, data: Path) -> dict[str, float]:
    """Y-PSNR/SSIM of a weights file on the selection sets, and Y-PSNR on the patterns, in float32, as
    ``idsa-sr eval`` scores them."""
    return model_scores(load_model(weights, device="cpu", dtype="float32"), data)


def model_scores(model: torch.nn.Module, data: Path) -> dict[str, float]:
    """:func:`selection_scores` of a loaded model."""
    return set_and_pattern_metrics(model_upscaler(model), data, SELECTION_SETS, model.idsa_info.scale)


@functools.cache
def bicubic_pattern_scores(scale: int) -> dict[str, float]:
    """Bicubic's :func:`~idsa_plugin.evaluate.pattern_scores`, the floor of :func:`pattern_failures` (computed once per scale)."""
    return pattern_scores(bicubic_upscaler(scale), scale)


def pattern_failures(new: dict[str, float], old: dict[str, float] | None, scale: int) -> list[str]:
    """The patterns on which ``new`` falls more than the tolerance below both ``old`` (if any) and bicubic."""
    bicubic = bicubic_pattern_scores(scale)
    failures = []
    for (name, floor), key in zip(bicubic.items(), PATTERN_METRICS, strict=True):
        allowed = min(floor, old[key]) if old and key in old else floor
        if new[key] < allowed - PATTERN_TOLERANCE_DB:
            failures.append(f"{name} {new[key]:.2f} dB < {allowed:.2f} - {PATTERN_TOLERANCE_DB}")
    return failures


def promote(candidate: str | os.PathLike, target: str | os.PathLike, data: Path) -> bool:
    """Write ``candidate`` over ``target`` (with its measured scores) if it is better on every selection set
    and passes the patterns."""
    model = load_model(candidate, device="cpu", dtype="float32")
    new = model_scores(model, data)
    old = selection_scores(target, data) if Path(target).is_file() else None
    better = old is None or all(new[psnr_key(s)] > old[psnr_key(s)] for s in SELECTION_SETS)
    failures = pattern_failures(new, old, model.idsa_info.scale)
    shown = ", ".join(f"{s} {new[psnr_key(s)]:.3f}" + (f" (was {old[psnr_key(s)]:.3f})" if old else "") for s in SELECTION_SETS)
    verdict = "promoted" if better and not failures else "kept the old weights"
    log.info("%s -> %s: %s%s: %s", candidate, target, shown, f"; patterns failed: {', '.join(failures)}" if failures else "", verdict)
    if better and not failures:
        state, metadata = read_weights(candidate)
        metrics = {**metadata_json(metadata, "metrics", {}), **new}
        write_weights(target, state, {**metadata, "metrics": metrics})
    return better and not failures
