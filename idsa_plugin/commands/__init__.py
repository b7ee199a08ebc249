"""Subcommands of ``idsa-sr``: one module each, with ``add_parser(subparsers)``."""
