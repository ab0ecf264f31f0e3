"""`cloud-sync`: the command line of railbot's cloud service."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version

from cloud_sync.errors import CloudSyncError
from cloud_sync.schema import METADATA, ddl_statements
from models import logformat


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-sync",
        description="railbot's cloud service: the seed's Base and Store APIs, tickets, and the fleet's sync.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('railbot')}")
    logformat.add_log_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    schema = commands.add_parser(
        "schema",
        help="print the SQL of the seed's tables",
        description="Print the CREATE statements of the seed's Base and Store databases as the models "
        "define them, for the chosen SQL dialect.",
    )
    schema.add_argument(
        "--dialect", choices=("postgresql", "sqlite"), default="postgresql", help="default: postgresql"
    )
    schema.add_argument(
        "--database",
        choices=(*METADATA, "all"),
        default="all",
        help="which of the seed's databases (default: all)",
    )
    schema.set_defaults(handler=_schema)
    return parser


def _schema(args: argparse.Namespace) -> int:
    databases = list(METADATA) if args.database == "all" else [args.database]
    for database in databases:
        print(f"-- {database} database ({args.dialect})")
        for statement in ddl_statements(database, args.dialect):
            print(f"{statement};\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logformat.configure(args.log_level or "INFO", args.log_format or "text")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.handler(args)
    except CloudSyncError as err:
        print(f"cloud-sync: {err}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
