"""`cloud-sync migrate` and `schema`: the database's schema."""

from __future__ import annotations

import argparse
import logging

from cloud_sync.cli.common import Commands, Parents
from cloud_sync.db import migrate
from cloud_sync.db.schema import METADATA, ddl_statements

log = logging.getLogger("cloud_sync")


def register_migrate(commands: Commands, parents: Parents) -> None:
    db = parents.db
    mig = commands.add_parser(
        "migrate",
        parents=[db],
        help="create or upgrade the database schema",
        description="Apply the Alembic migrations up to the newest (or --revision); logs each step and "
        "the revision the database is at afterwards. Refuses to go back to an older revision without "
        "--downgrade.",
    )
    mig.add_argument(
        "--revision", default="head", help="the revision to reach: an id, head or base (default: head)"
    )
    mig.add_argument(
        "--downgrade",
        action="store_true",
        help="allow going back to an older --revision: drops what newer revisions added, data included",
    )
    mig.set_defaults(handler=_migrate)


def register_schema(commands: Commands, parents: Parents) -> None:
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


def _migrate(args: argparse.Namespace) -> int:
    reached = migrate.upgrade(args.db, args.revision, downgrade=args.downgrade)
    log.info("database at revision=%s", reached or "base")
    return 0


def _schema(args: argparse.Namespace) -> int:
    databases = list(METADATA) if args.database == "all" else [args.database]
    for database in databases:
        print(f"-- {database} database ({args.dialect})")
        for statement in ddl_statements(database, args.dialect):
            print(f"{statement};\n")
    return 0
