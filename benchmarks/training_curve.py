"""The Set5 curves of the shipped models against training hours, across sessions, one panel per scale: does
more training still pay?

    .venv/bin/python benchmarks/training_curve.py   # reads benchmarks/training_curve.csv, writes benchmarks/curves.png
    .venv/bin/python benchmarks/training_curve.py --append runs/idsa-net-x2/metrics.csv --start-step 2500 \\
        --model "idsa-net x2" --session 6 --run "6: the cycle finished, 48 px, 1 thread"

``training_curve.csv`` holds one row per validation of the runs that made the shipped weights (model, EMA Set5
Y-PSNR as the trainer scores it, hours from the trainer's measured it/s, cumulated over sessions per model).
Each session appends the validations of its runs' ``metrics.csv`` with ``--append``: steps and hours continue
from the model's last row, each window of ``metrics.csv`` costing its steps over its measured it/s.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from idsa_plugin.evaluate import psnr_key
from idsa_plugin.train.plot import plot_series

HERE = Path(__file__).resolve().parent
FIELDS = ["model", "session", "layout", "run", "cpu_hours", "steps", "set5_psnr"]
SET5_COLUMN = psnr_key("Set5")  # the trainer's metrics.csv column that the curve follows


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def appended_rows(curve: list[dict[str, str]], metrics: list[dict[str, str]], start_step: int, model: str,
                  session: str, run: str, layout: str | None = None) -> list[dict[str, str]]:
    """The validations of one run's ``metrics`` as curve rows of ``model``, continuing its last row's steps and hours."""
    mine = [r for r in curve if r["model"] == model]
    if not mine and layout is None:
        raise ValueError(f"{model} has no rows yet: give its layout")
    hours = float(mine[-1]["cpu_hours"]) if mine else 0.0
    steps = int(mine[-1]["steps"]) if mine else 0
    previous, rows = start_step, []
    for row in metrics:
        step = int(row["step"])
        if step <= previous:
            raise ValueError(f"metrics step {step} does not follow {previous}: give the step the run started from")
        hours += (step - previous) / float(row["it_s"]) / 3600
        if row.get(SET5_COLUMN):
            rows.append({"model": model, "session": session, "layout": layout or mine[-1]["layout"], "run": run,
                         "cpu_hours": f"{hours:.3f}", "steps": str(steps + step - start_step), "set5_psnr": row[SET5_COLUMN]})
        previous = step
    if not rows:
        raise ValueError(f"no validation ({SET5_COLUMN}) in the metrics")
    return rows


def plot_and_summarise(rows: list[dict[str, str]], png: Path) -> None:
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for model in sorted(dict.fromkeys(r["model"] for r in rows)):  # sorted: each model's colour the same in every panel
        mine = [r for r in rows if r["model"] == model]
        panels.setdefault(model.split()[-1], {})[f"{model}, Set5 Y-PSNR (dB)"] = (
            [float(r["cpu_hours"]) for r in mine], [float(r["set5_psnr"]) for r in mine])
    plot_series(png, [panels[scale] for scale in sorted(panels)])
    print("| model | session | layout | run | hours at the end | steps | best Set5 |\n|---|---|---|---|---:|---:|---:|")
    for model, run in dict.fromkeys((r["model"], r["run"]) for r in rows):
        mine = [r for r in rows if (r["model"], r["run"]) == (model, run)]
        print(f"| {model} | {mine[0]['session']} | {mine[0]['layout']} | {run} | {float(mine[-1]['cpu_hours']):.2f} | {mine[-1]['steps']} | "
              f"{max(float(r['set5_psnr']) for r in mine):.3f} |")
    print(f"wrote {png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curve", type=Path, default=HERE / "training_curve.csv")
    p.add_argument("--png", type=Path, default=HERE / "curves.png")
    p.add_argument("--append", type=Path, metavar="METRICS_CSV", help="a run's metrics.csv whose validations to append")
    p.add_argument("--start-step", type=int, help="the trainer step the run started from (its log: 'resumed ... at step N')")
    p.add_argument("--model", help='the curve\'s model, e.g. "idsa-net x2"')
    p.add_argument("--session", help="the session number")
    p.add_argument("--run", help="what the run was: schedule, patch, threads")
    p.add_argument("--layout", help="the model's layout (default: that of its last row)")
    args = p.parse_args()
    rows = read_rows(args.curve)
    if args.append:
        missing = [f"--{name.replace('_', '-')}" for name in ("start_step", "model", "session", "run") if getattr(args, name) is None]
        if missing:
            p.error(f"--append needs {', '.join(missing)}")
        new = appended_rows(rows, read_rows(args.append), args.start_step, args.model, args.session, args.run, args.layout)
        with open(args.curve, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=FIELDS).writerows(new)
        print(f"appended {len(new)} rows to {args.curve}")
        rows += new
    plot_and_summarise(rows, args.png)


if __name__ == "__main__":
    main()
