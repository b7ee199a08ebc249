"""A small PNG of the loss and validation PSNR curves, drawn with Pillow (no plotting library)."""
from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageDraw

Series = tuple[str, list[float], list[float], str]  # label, xs, ys, colour
COLOURS = ("blue", "red", "green", "purple", "orange")


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], series: list[Series], x_name: str = "step") -> None:
    """Curves on shared axes, each labelled with its last value, minimum and maximum."""
    left, top, right, bottom = box
    draw.rectangle(box, outline="black")
    drawn = [s for s in series if s[1]]
    if not drawn:
        draw.text((left + 5, top + 5), f"{series[0][0]}: no data yet", fill="black")
        return
    all_x, all_y = [x for s in drawn for x in s[1]], [y for s in drawn for y in s[2]]
    lo, x0 = min(all_y), min(all_x)
    span_y, span_x = (max(all_y) - lo) or 1.0, (max(all_x) - x0) or 1.0
    draw.text((2, top), f"{lo + span_y:.4g}", fill="black")
    draw.text((2, bottom - 10), f"{lo:.4g}", fill="black")
    for row, (label, xs, ys, colour) in enumerate(drawn):
        points = [(left + (x - x0) / span_x * (right - left), bottom - (y - lo) / span_y * (bottom - top)) for x, y in zip(xs, ys)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((left + 5, top + 5 + 14 * row), f"{label}: last {ys[-1]:.4g} (min {min(ys):.4g}, max {max(ys):.4g}) at {x_name} {xs[-1]:g}",
                  fill=colour)


def plot_metrics(csv_path: Path, png_path: Path, psnr_column: str) -> None:
    """Loss (top) and the validation PSNR in ``psnr_column`` (bottom) against the step."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    loss = [(float(r["step"]), float(r["loss"])) for r in rows if r.get("loss")]
    psnr = [(float(r["step"]), float(r[psnr_column])) for r in rows if r.get(psnr_column)]
    image = Image.new("RGB", (800, 500), "white")
    draw = ImageDraw.Draw(image)
    _panel(draw, (40, 20, 780, 230), [("training loss", [s for s, _ in loss], [v for _, v in loss], "red")])
    _panel(draw, (40, 270, 780, 480), [(f"{psnr_column} (dB)", [s for s, _ in psnr], [v for _, v in psnr], "blue")])
    image.save(png_path)


def plot_series(png_path: Path, panels: list[dict[str, tuple[list[float], list[float]]]], x_name: str = "hour") -> None:
    """Panels of labelled curves on shared axes, one above the other (e.g. Set5 PSNR of each model against
    training hours across sessions, one panel per scale) as a PNG."""
    image = Image.new("RGB", (800, 20 + 280 * len(panels)), "white")
    draw = ImageDraw.Draw(image)
    for row, series in enumerate(panels):
        curves = [(label, xs, ys, COLOURS[i % len(COLOURS)]) for i, (label, (xs, ys)) in enumerate(series.items())]
        _panel(draw, (40, 20 + 280 * row, 780, 280 + 280 * row), curves, x_name=x_name)
    image.save(png_path)
