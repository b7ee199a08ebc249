"""The evaluation protocol that reproduces published SR tables (see shared/data/SOURCES.md).

HR modcropped to the scale, LR by MATLAB-exact bicubic, SR clamped and quantised to uint8, then
PSNR and SSIM on the BT.601 Y channel (kept in floating point) with ``scale`` pixels shaved.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .imresize import imresize, modcrop

Upscaler = Callable[[np.ndarray], np.ndarray]
IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """``explicit``, else ``$IDSA_DATA``, else ``../shared/data`` beside the checkout; None if absent.

    The data folder holds ``benchmarks/<Set>``; given the ``benchmarks`` folder itself, its parent is the data folder.
    """
    here = Path(__file__).resolve().parent.parent
    for candidate in (explicit, os.environ.get("IDSA_DATA"), here.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            path = Path(candidate)
            return path.parent if path.name == "benchmarks" and not (path / "benchmarks").is_dir() else path
    return None


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB (grey images are replicated to three channels)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def is_grey_file(path: str | os.PathLike) -> bool:
    with Image.open(path) as img:
        return img.mode in ("L", "I;16", "1")


@dataclass(frozen=True)
class Pair:
    name: str
    hr: np.ndarray
    lr: np.ndarray
    grey: bool


@lru_cache(maxsize=32)
def hr_lr_pairs(directory: str, scale: int) -> tuple[Pair, ...]:
    """Modcropped HR and its MATLAB-bicubic LR for every image of a set, sorted by name."""
    files = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {directory}")
    pairs = []
    for path in files:
        hr = modcrop(load_rgb(path), scale)
        pairs.append(Pair(path.stem, hr, imresize(hr, 1 / scale), is_grey_file(path)))
    return tuple(pairs)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma in float64 for uint8 RGB."""
    rgb = image.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


@lru_cache(maxsize=1)
def _gaussian_window() -> torch.Tensor:
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of Wang et al. 2004 on [0, 255] images (11x11 Gaussian, sigma 1.5, 'valid' filtering)."""
    window = _gaussian_window()
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    sxx = F.conv2d(x * x, window) - mu_x ** 2
    syy = F.conv2d(y * y, window) - mu_y ** 2
    sxy = F.conv2d(x * y, window) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return float(value.mean())


def y_metrics(sr: np.ndarray, hr: np.ndarray, scale: int, raw_grey: bool = False) -> tuple[float, float]:
    """(PSNR, SSIM) on the Y channel with ``scale`` pixels shaved from every border.

    ``raw_grey`` scores a grey image on its raw values instead of its luma: the legacy rule behind
    the published bicubic rows (Set14's bridge), not the protocol that models are scored with.
    """
    s = slice(scale, -scale)
    to_y = (lambda im: im[..., 0].astype(np.float64)) if raw_grey else rgb_to_y
    y_sr, y_hr = to_y(sr)[s, s], to_y(hr)[s, s]
    return psnr(y_sr, y_hr), ssim(y_sr, y_hr)


def model_upscaler(model: torch.nn.Module) -> Upscaler:
    """Run a torch model on one uint8 RGB image, whole, and quantise its output to uint8."""
    param = next(model.parameters())

    @torch.inference_mode()
    def run(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].to(param.device, param.dtype) / 255.0
        y = model(x.contiguous(memory_format=torch.channels_last)).float().clamp_(0, 1)
        return (y[0].permute(1, 2, 0) * 255.0).round_().to(torch.uint8).cpu().numpy()

    return run


def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB-bicubic upscaling: the baseline row of every SR table."""
    return lambda lr: imresize(lr, scale)


@dataclass(frozen=True)
class SetResult:
    name: str
    scale: int
    psnr: float
    ssim: float
    images: int

    def as_dict(self) -> dict:
        return {"set": self.name, "scale": self.scale, "psnr": round(self.psnr, 4), "ssim": round(self.ssim, 5), "images": self.images}


def evaluate_set(upscale: Upscaler, directory: str | os.PathLike, scale: int,
                 save_dir: str | os.PathLike | None = None, legacy_grey: bool = False) -> SetResult:
    """Average Y-PSNR/SSIM of ``upscale`` over a benchmark folder at ``scale``."""
    scores = []
    for pair in hr_lr_pairs(str(directory), scale):
        sr = upscale(pair.lr)
        if sr.shape != pair.hr.shape:
            raise ValueError(f"{pair.name}: output {sr.shape} does not match HR {pair.hr.shape}")
        scores.append(y_metrics(sr, pair.hr, scale, raw_grey=legacy_grey and pair.grey))
        if save_dir is not None:
            out = Path(save_dir) / Path(directory).name / f"x{scale}"
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(out / f"{pair.name}.png")
    p, s = np.mean(scores, axis=0)
    return SetResult(Path(directory).name, scale, float(p), float(s), len(scores))


def evaluate(upscale: Upscaler, data: Path, sets: Iterable[str], scale: int,
             save_dir: str | os.PathLike | None = None, legacy_grey: bool = False) -> list[SetResult]:
    """Evaluate on several sets found under ``data/benchmarks``."""
    return [evaluate_set(upscale, data / "benchmarks" / name, scale, save_dir, legacy_grey) for name in sets]


def two_colour_cells(height: int, width: int, cell: int, checkerboard: bool) -> np.ndarray:
    """A (height, width) map of 0/1 square cells of ``cell`` pixels: a checkerboard, else vertical stripes."""
    rows, cols = np.mgrid[:height, :width] // cell
    return (rows + cols) % 2 if checkerboard else cols % 2


PATTERN_NAMES = ("noise", "checkerboard", "stripes")  # the probes of pattern_probes, in order
PATTERN_METRICS = tuple(f"pattern_{name}_psnr" for name in PATTERN_NAMES)  # their keys in metrics and metadata


def pattern_probes(scale: int) -> dict[str, np.ndarray]:
    """Synthetic HR probes, 32x48 LR pixels at ``scale``: uniform noise, and black-and-white checkerboard and
    vertical stripes with cells of ``scale`` pixels (pixel checkerboards and stripes once downscaled)."""
    h, w = 32 * scale, 48 * scale
    checker, stripes = two_colour_cells(h, w, scale, True), two_colour_cells(h, w, scale, False)
    noise = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    painted = [np.repeat(cells[..., None] * 255, 3, axis=2).astype(np.uint8) for cells in (checker, stripes)]
    return dict(zip(PATTERN_NAMES, [noise, *painted], strict=True))


def pattern_metrics(upscale: Upscaler, scale: int) -> dict[str, float]:
    """:func:`pattern_scores` under the keys of ``PATTERN_METRICS``."""
    return {key: score for key, score in zip(PATTERN_METRICS, pattern_scores(upscale, scale).values(), strict=True)}


def pattern_scores(upscale: Upscaler, scale: int) -> dict[str, float]:
    """Y-PSNR of ``upscale`` on each of :func:`pattern_probes`, scored as the benchmark sets are."""
    return {name: round(y_metrics(upscale(imresize(hr, 1 / scale)), hr, scale)[0], 2)
            for name, hr in pattern_probes(scale).items()}


def set_and_pattern_metrics(upscale: Upscaler, data: Path, sets: Iterable[str], scale: int) -> dict[str, float]:
    """Y-PSNR/SSIM on each set as ``<set>_psnr``/``<set>_ssim`` and :func:`pattern_metrics`: what training
    validation logs and promotion compares."""
    metrics: dict[str, float] = {}
    for result in evaluate(upscale, data, sets, scale):
        scored = result.as_dict()
        metrics[psnr_key(result.name)], metrics[f"{result.name}_ssim"] = scored["psnr"], scored["ssim"]
    return {**metrics, **pattern_metrics(upscale, scale)}


def psnr_key(set_name: str) -> str:
    """The key of a set's Y-PSNR in :func:`set_and_pattern_metrics` (and so in metrics.csv and weights metadata)."""
    return f"{set_name}_psnr"
