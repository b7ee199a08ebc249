"""Training configuration: a flat TOML file plus ``key=value`` overrides."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PIXEL_LOSSES = {"l1": "l1_loss", "l2": "mse_loss"}  # config name -> torch.nn.functional loss, chosen by the trainer


@dataclass
class TrainConfig:
    name: str = "idsa-net-s-x2"
    model: str = "idsa-net-s"
    scale: int = 2
    model_options: dict[str, Any] = field(default_factory=dict)
    train_dirs: list[str] = field(default_factory=lambda: ["train/T91", "train/BSD200"])
    data: str = ""
    lr_patch: int = 48
    pattern_prob: float = 0.0  # share of crops painted with checkerboards/stripes (PairDataset)
    batch: int = 16
    workers: int = 1
    seed: int = 0
    steps: int = 20000
    lr: float = 2e-3
    min_lr: float = 1e-5
    restart_lr: float = 0.0  # peak of a warm restart (train --more); 0: lr
    weight_decay: float = 1e-4
    warmup: int = 200
    schedule: str = "cosine"
    milestones: list[int] = field(default_factory=list)
    clip: float = 1.0
    ema: float = 0.999
    pixel_loss: str = "l1"  # l1, or l2 for a short fine-tune at the end
    fft_weight: float = 0.0
    validate_every: int = 500
    validate_sets: list[str] = field(default_factory=lambda: ["Set5"])
    checkpoint_every: int = 200
    out: str = "runs"
    threads: int = 0
    amp: str = "auto"
    compile: bool = False
    init_from: str = ""
    resume_state: str = ""  # landed compact state: resumed when the run has no checkpoint, replaced after training
    progress: bool = True

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read ``path`` (TOML, flat keys of :class:`TrainConfig`) and apply ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as f:
            values.update(tomllib.load(f))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        if key.startswith("model_options."):
            values.setdefault("model_options", {})[key.split(".", 1)[1]] = _parse_value(text)
        else:
            values[key] = _parse_value(text)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if values.get("pixel_loss", "l1") not in PIXEL_LOSSES:
        raise ValueError(f"pixel_loss = {values['pixel_loss']!r}: choose {' or '.join(PIXEL_LOSSES)}")
    return TrainConfig(**values)
