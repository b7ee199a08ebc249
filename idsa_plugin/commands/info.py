"""``idsa-sr info``: parameters and MACs of every registered model at each scale."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..archs import supported_scales

if TYPE_CHECKING:
    from torch import nn

OUTPUT_SIZE = (1280, 720)


def model_cost(name: str, scale: int) -> dict:
    """Parameters and MACs (FLOPs / 2, as papers count them) for a 1280x720 output of a registered model's layout."""
    import torch

    from ..models import build_model

    with torch.device("meta"):
        model = build_model(name, scale)
    return {"model": name, "scale": scale, **module_cost(model, scale)}


def module_cost(model: nn.Module, scale: int) -> dict:
    """Parameters and MACs for a 1280x720 output of ``model`` as built or loaded (e.g. weights of another layout),
    counted on a meta-tensor copy."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    shadow = copy.deepcopy(model).to("meta")
    x = torch.empty(1, 3, OUTPUT_SIZE[1] // scale, OUTPUT_SIZE[0] // scale, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        shadow(x)
    return {"parameters": sum(p.numel() for p in shadow.parameters()), "gmacs_1280x720": round(counter.get_total_flops() / 2e9, 2)}


def run(args: argparse.Namespace) -> int:
    from ..plugins import get_host

    host = get_host()
    names = [args.model] if args.model else sorted(host.models)
    rows = []
    for name in names:
        spec = host.model(name)
        for scale in [args.scale] if args.scale else spec.scales:
            row = model_cost(name, scale)
            weights = spec.weights(scale) if spec.weights else None
            row.update(plugin=spec.plugin, weights=weights or "none")
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<12} {'scale':>5} {'params':>9} {'GMACs@720p':>11}  weights")
    for r in rows:
        print(f"{r['model']:<12} {'x' + str(r['scale']):>5} {r['parameters']:>9,} {r['gmacs_1280x720']:>11.2f}  {r['weights']}")
    print("MACs = multiply-accumulates for a 1280x720 output (torch.utils.flop_counter FLOPs / 2).")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="parameters and MACs of the registered models",
                       description="For every registered model and scale: parameters and MACs at 1280x720 output, and its weights.")
    p.add_argument("--model", help="only this model")
    p.add_argument("--scale", type=int, choices=supported_scales(), help="only this scale")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
