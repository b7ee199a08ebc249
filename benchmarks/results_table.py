"""The README's quality table: every shipped model beside bicubic and the IMDN reproduction.

    .venv/bin/python benchmarks/results_table.py [--scales 2,3,4] [--sets Set5,Set14,B100] [--no-imdn]

Scores come from the same code as `idsa-sr eval` (protocol of shared/data/SOURCES.md); MACs are
counted for a 1280x720 output; training steps and hardware come from each weights file's metadata.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from idsa_plugin.builtin import shipped_weights
from idsa_plugin.commands.info import model_cost, module_cost
from idsa_plugin.evaluate import bicubic_upscaler, data_root, evaluate, model_upscaler
from idsa_plugin.models import load_model


def _source_name(init_from: str) -> str:
    """The model a run started from: its run folder for ``runs/<name>/best.safetensors``, else the file's stem."""
    path = Path(init_from)
    return path.parent.name if path.parent.parent.name == "runs" else path.stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--sets", default="Set5,Set14,B100")
    parser.add_argument("--models", default="idsa-net-s,idsa-net")
    parser.add_argument("--no-imdn", dest="imdn", action="store_false")
    args = parser.parse_args()
    data, sets = data_root(), args.sets.split(",")
    header = "| scale | model | params | GMACs | " + " | ".join(sets) + " | training |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for scale in map(int, args.scales.split(",")):
        rows = [("bicubic", bicubic_upscaler(scale), "-", "-", "-")]
        if args.imdn:
            model = load_model("imdn", scale=scale, weights=data / "reference" / "IMDN" / f"IMDN_x{scale}.pth", device="cpu")
            cost = model_cost("imdn", scale)
            rows.append(("IMDN (official weights)", model_upscaler(model), f"{cost['parameters']:,}", cost["gmacs_1280x720"], "published"))
        for name in args.models.split(","):
            if shipped_weights(name, scale) is None:
                continue
            model = load_model(name, scale=scale, device="cpu")
            meta = model.idsa_info.metadata
            cost = module_cost(model, scale)  # the layout of the shipped file, which may predate the registry's
            config = json.loads(meta.get("config", "{}"))
            start = f" from {_source_name(config['init_from'])}" if config.get("init_from") else ""
            training = f"{meta.get('steps', '?')} steps{start}, {meta.get('hardware', '?')}"
            rows.append((f"{name} (shipped)", model_upscaler(model), f"{cost['parameters']:,}", cost["gmacs_1280x720"], training))
        for label, upscale, params, gmacs, training in rows:
            results = evaluate(upscale, data, sets, scale)
            scores = " | ".join(f"{r.psnr:.2f} / {r.ssim:.4f}" for r in results)
            print(f"| x{scale} | {label} | {params} | {gmacs} | {scores} | {training} |", flush=True)
            print(json.dumps({"scale": scale, "model": label, "results": [r.as_dict() for r in results]}), file=sys.stderr)


if __name__ == "__main__":
    main()
