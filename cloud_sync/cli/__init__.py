"""`cloud-sync`: the command line of railbot's cloud service, one module per group of commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version

from cloud_sync.cli import common, database, keys, robots, serve, sync, tokens, wallet
from cloud_sync.errors import CloudSyncError
from models import console, logformat


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-sync",
        description="railbot's cloud service: the seed's Base and Store APIs, tickets, and the fleet's sync.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('railbot')}")
    logformat.add_log_arguments(parser)
    parents = common.parents()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In the order `cloud-sync --help` lists them.
    for register in (
        serve.register,
        sync.register,
        database.register_migrate,
        tokens.register,
        keys.register,
        wallet.register,
        robots.register,
        database.register_schema,
    ):
        register(commands, parents)
    logformat.add_log_arguments_to_commands(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logformat.configure(args.log_level or "INFO", args.log_format or "text")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return console.run_command(
        "cloud-sync", lambda: int(args.handler(args)), CloudSyncError, lambda err: [f"cloud-sync: {err}"]
    )
