"""Promotion of trained weights: a candidate replaces the shipped file only if it beats it on Set5 and Set14.

B100 is never used here: it stays for the final table. The promoted file records the scores measured here,
so the metadata always says what ``idsa-sr eval`` measures.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..evaluate import evaluate_set, model_upscaler
from ..models import load_model
from ..weights_io import metadata_json, read_weights, write_weights

log = logging.getLogger("idsa_plugin.train")
SELECTION_SETS = ("Set5", "Set14")


def selection_scores(weights: str | os.PathLike, data: Path) -> dict[str, float]:
    """Y-PSNR/SSIM of a weights file on the selection sets, in float32, as ``idsa-sr eval`` scores them."""
    model = load_model(weights, device="cpu", dtype="float32")
    scores: dict[str, float] = {}
    for name in SELECTION_SETS:
        result = evaluate_set(model_upscaler(model), data / "benchmarks" / name, model.idsa_info.scale)
        scores[f"{name}_psnr"], scores[f"{name}_ssim"] = round(result.psnr, 4), round(result.ssim, 5)
    return scores


def promote(candidate: str | os.PathLike, target: str | os.PathLike, data: Path) -> bool:
    """Write ``candidate`` over ``target`` (with its measured scores) if it is better on every selection set."""
    new = selection_scores(candidate, data)
    old = selection_scores(target, data) if Path(target).is_file() else None
    better = old is None or all(new[f"{s}_psnr"] > old[f"{s}_psnr"] for s in SELECTION_SETS)
    shown = ", ".join(f"{s} {new[f'{s}_psnr']:.3f}" + (f" (was {old[f'{s}_psnr']:.3f})" if old else "") for s in SELECTION_SETS)
    log.info("%s -> %s: %s: %s", candidate, target, shown, "promoted" if better else "kept the old weights")
    if better:
        state, metadata = read_weights(candidate)
        metrics = {**metadata_json(metadata, "metrics", {}), **new}
        write_weights(target, state, {**metadata, "metrics": metrics})
    return better
