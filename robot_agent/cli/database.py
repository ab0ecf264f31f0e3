"""`robot-agent db tables|rows`: the robot's SQLite database, read-only, for engineers."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from robot_agent.cli.common import Commands, print_table

if TYPE_CHECKING:
    from robot_agent.store.inspection import Inspection


def register(commands: Commands) -> None:
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database",
        type=Path,
        metavar="FILE",
        help="the SQLite file to read (default: [storage] database of --config)",
    )
    db = commands.add_parser(
        "db",
        help="look into the robot's database, read-only",
        description="Show the robot's SQLite tables and their rows, for engineers. The database is "
        "opened read-only (SQLite mode=ro) and never migrated, so nothing stored changes, even while the "
        "agent runs. "
        "Columns holding secrets or biometrics (password and key hashes, card UIDs, ticket codes, face "
        "embeddings: any column whose name has such a word) are shown as ***; binary data as its size.",
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    tables = db_commands.add_parser(
        "tables",
        parents=[database],
        help="list the tables with their row counts",
        description="List every table of the robot's database with its number of rows.",
    )
    tables.add_argument("--json", action="store_true", help='print [{"table": ..., "rows": N}, ...]')
    tables.set_defaults(handler=_db_tables)
    rows = db_commands.add_parser(
        "rows",
        parents=[database],
        help="show a table's rows as a table, JSON or CSV",
        description="Print the first rows of a table (in storage order) as an aligned table, a JSON array "
        "of objects or CSV with a header; secret columns are masked, and named on stderr.",
    )
    rows.add_argument("table", metavar="TABLE", help="a table name, as `db tables` lists them")
    rows.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N rows (default: 20)")
    rows.add_argument("--format", choices=("table", "json", "csv"), default="table", help="default: table")
    rows.set_defaults(handler=_db_rows)


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return number


def _inspection(args: argparse.Namespace) -> Inspection:
    from robot_agent.config import load_config
    from robot_agent.store.inspection import Inspection

    path: Path = args.database or load_config(args.config, provisioned_may_be_missing=True).storage.database
    return Inspection(path)


def _db_tables(args: argparse.Namespace) -> int:
    with _inspection(args) as inspection:
        sizes = inspection.tables()
    if args.json:
        print(json.dumps([{"table": size.name, "rows": size.rows} for size in sizes], indent=2))
    else:
        print_table(("table", "rows"), [(size.name, size.rows) for size in sizes])
    return 0


def _db_rows(args: argparse.Namespace) -> int:
    with _inspection(args) as inspection:
        found = inspection.rows(args.table, args.limit)
    if found.masked:
        print(f"robot-agent: {', '.join(found.masked)} masked (secret)", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([dict(zip(found.columns, row, strict=True)) for row in found.rows], indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(found.columns)
        writer.writerows(found.rows)
    else:
        print_table(found.columns, found.rows)
    return 0
