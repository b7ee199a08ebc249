"""``idsa-sr``: the command line. Each subcommand is a module in ``idsa_plugin.commands`` with an
``add_parser(subparsers)`` function; errors print as one line (tracebacks with ``--debug``)."""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

COMMANDS = ("info", "eval", "upscale", "transcode", "batch", "export", "train", "plugins")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idsa-sr", description="IDSA-Net super-resolution: models, evaluation, video and training.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"idsa_plugin.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"idsa_plugin.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Arguments of a command; ``key=value`` overrides may come before and after its options
    (argparse alone takes only one run of positionals and rejects the rest)."""
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list) and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    # Ctrl-C must stop cleanly (no half file) even when started by a shell that ignores SIGINT for
    # background jobs: a non-interactive `cmd &` inherits SIG_IGN, which Python keeps.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"idsa-sr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"idsa-sr {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
