"""A small PNG of the loss and validation PSNR curves, drawn with Pillow (no plotting library)."""
from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageDraw


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], xs: list[float], ys: list[float], title: str, colour: str,
           x_name: str = "step") -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline="black")
    if len(xs) < 1:
        draw.text((left + 5, top + 5), f"{title}: no data yet", fill="black")
        return
    lo, hi = min(ys), max(ys)
    span_y, span_x = (hi - lo) or 1.0, (max(xs) - min(xs)) or 1.0
    points = [(left + (x - min(xs)) / span_x * (right - left), bottom - (y - lo) / span_y * (bottom - top)) for x, y in zip(xs, ys)]
    if len(points) > 1:
        draw.line(points, fill=colour, width=2)
    draw.text((left + 5, top + 5), f"{title}: last {ys[-1]:.4g} (min {lo:.4g}, max {hi:.4g}) at {x_name} {xs[-1]:g}", fill="black")


def plot_metrics(csv_path: Path, png_path: Path) -> None:
    """Loss (top) and the first validation PSNR column (bottom) against the step."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    psnr_key = next((k for k in (rows[0] if rows else {}) if k.endswith("_psnr")), None)
    loss = [(float(r["step"]), float(r["loss"])) for r in rows if r.get("loss")]
    psnr = [(float(r["step"]), float(r[psnr_key])) for r in rows if psnr_key and r.get(psnr_key)]
    image = Image.new("RGB", (800, 500), "white")
    draw = ImageDraw.Draw(image)
    _panel(draw, (40, 20, 780, 230), [s for s, _ in loss], [v for _, v in loss], "L1 loss", "red")
    _panel(draw, (40, 270, 780, 480), [s for s, _ in psnr], [v for _, v in psnr], f"{psnr_key or 'PSNR'} (dB)", "blue")
    image.save(png_path)


def plot_series(png_path: Path, xs: list[float], ys: list[float], title: str) -> None:
    """One curve (e.g. Set5 PSNR against training hours across sessions) as a PNG."""
    image = Image.new("RGB", (800, 300), "white")
    _panel(ImageDraw.Draw(image), (40, 20, 780, 280), xs, ys, title, "blue", x_name="hour")
    image.save(png_path)
