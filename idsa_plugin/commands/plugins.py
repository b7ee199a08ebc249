"""``idsa-sr plugins``: the plugins found, their hooks, models and frame filters."""
from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from ..plugins import get_host

    host = get_host()
    report = []
    for name, plugin in host.manager.list_name_plugin():
        report.append({
            "name": name,
            "hooks": sorted(h.name for h in host.manager.get_hookcallers(plugin) or []),
            "models": sorted(m.name for m in host.models.values() if m.plugin == name),
            "frame_filters": sorted(f.name for f in host.frame_filters.values() if f.plugin == name),
        })
    problems = list(host.failures)
    if args.json:
        print(json.dumps({"plugins": report, "problems": problems}, indent=2))
        return 0
    for p in report:
        print(f"{p['name']}: hooks {', '.join(p['hooks']) or '-'}")
        if p["models"]:
            print(f"  models: {', '.join(p['models'])}")
        if p["frame_filters"]:
            print(f"  frame filters: {', '.join(p['frame_filters'])}")
    for problem in problems:
        print(f"problem: {problem}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list plugins, their hooks, models and filters",
                       description="List the plugins found (entry-point group 'idsa_plugin'; IDSA_PLUGINS allowlists, "
                                   "IDSA_DISABLE_PLUGINS disables), with their hooks, models, frame filters and any problems.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
