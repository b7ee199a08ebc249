"""``idsa-sr train``: train a model from a TOML config."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..train import Trainer, load_config

    cfg = load_config(args.config, args.overrides)
    if not args.progress:
        cfg.progress = False
    trainer = Trainer(cfg)
    best = trainer.train(resume=args.resume, more=args.more, new_cycle=args.new_cycle)
    print(f"best weights: {best}" if best.exists() else "no validation ran yet: no best weights")
    if args.promote and best.exists() and trainer.rank == 0:
        from ..train.promote import promote

        promote(best, args.promote, trainer.data)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a TOML config",
                       description="Train a model. Overrides are key=value pairs of the config (e.g. steps=100 lr=1e-3). "
                                   "Multi-GPU / multi-node: launch with torchrun.")
    p.add_argument("--config", help="TOML config (see configs/); keys are those of TrainConfig")
    p.add_argument("--resume", action="store_true", help="continue exactly from the run's checkpoint if there is one")
    p.add_argument("--more", type=int, default=0, metavar="N",
                   help="N more steps past the resumed state, as a warm restart (an interrupted --more run is finished instead: run again after it)")
    p.add_argument("--new-cycle", action="store_true", help="with --more: drop an interrupted cycle and start the N steps now")
    p.add_argument("--promote", metavar="WEIGHTS", help="afterwards, replace WEIGHTS by the best export if it beats them on Set5 and Set14")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=100 model_options.inha=false")
    p.set_defaults(func=run)
