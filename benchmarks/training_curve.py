"""The Set5 curves of the shipped x2 models against training hours, across sessions: does more training still pay?

    .venv/bin/python benchmarks/training_curve.py   # reads benchmarks/training_curve.csv, writes benchmarks/curves.png

``training_curve.csv`` holds one row per validation of the runs that made the shipped weights (model, EMA Set5
x2 Y-PSNR as the trainer scores it, hours from the trainer's measured it/s, cumulated over sessions per model).
Each session appends the rows of its runs' ``metrics.csv``.
"""
from __future__ import annotations

import csv
from pathlib import Path

from idsa_plugin.train.plot import plot_series

HERE = Path(__file__).resolve().parent


def main() -> None:
    with open(HERE / "training_curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    series = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        series[f"{model}, Set5 Y-PSNR (dB)"] = ([float(r["cpu_hours"]) for r in mine], [float(r["set5_psnr"]) for r in mine])
    plot_series(HERE / "curves.png", series)
    print("| model | session | layout | run | hours at the end | steps | best Set5 |\n|---|---|---|---|---:|---:|---:|")
    for model, run in dict.fromkeys((r["model"], r["run"]) for r in rows):
        mine = [r for r in rows if (r["model"], r["run"]) == (model, run)]
        print(f"| {model} | {mine[0]['session']} | {mine[0]['layout']} | {run} | {float(mine[-1]['cpu_hours']):.2f} | {mine[-1]['steps']} | "
              f"{max(float(r['set5_psnr']) for r in mine):.3f} |")
    print(f"wrote {HERE / 'curves.png'}")


if __name__ == "__main__":
    main()
