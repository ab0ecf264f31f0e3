"""What several of cloud-sync's commands share: the --db and --keys-dir parents, the broker login's arguments,
and running a command's work in a session on a migrated database."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeVar

from cloud_sync.db import migrate
from cloud_sync.db.database import DEFAULT_DB_URL, create_engine, database_errors, session_factory
from cloud_sync.desks.signing import DEFAULT_KEYS_DIR
from cloud_sync.sync import broker_login
from cloud_sync.sync.broker_login import BrokerLogin

T = TypeVar("T")

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(frozen=True)
class Parents:
    """The parent parsers commands take their shared options from."""

    db: argparse.ArgumentParser
    keys_dir: argparse.ArgumentParser


def parents() -> Parents:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db",
        default=DEFAULT_DB_URL,
        metavar="URL",
        help=f"the database: sqlite:///PATH or postgresql://USER@HOST/NAME (default: {DEFAULT_DB_URL})",
    )
    keys_dir = argparse.ArgumentParser(add_help=False)
    keys_dir.add_argument(
        "--keys-dir",
        type=Path,
        default=DEFAULT_KEYS_DIR,
        metavar="DIR",
        help=f"where private signing keys live, mode 0600 (default: {DEFAULT_KEYS_DIR})",
    )
    return Parents(db, keys_dir)


def add_broker_login_arguments(command: argparse.ArgumentParser, role: str) -> None:
    command.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="a file with username:password (mode 0600), e.g. broker-config's ingest-credentials",
    )
    command.add_argument(
        "--client-id",
        default=f"{role}-{socket.gethostname()}",
        metavar="ID",
        help="this process's MQTT client id; keep it across restarts, and give each process its own "
        f"(default: {role}-HOSTNAME)",
    )


def broker_login_from(args: argparse.Namespace) -> BrokerLogin:
    username, password = broker_login.read_credentials(args.credentials) if args.credentials else (None, None)
    broker_login.mqtt_address(
        args.mqtt
    )  # a bad URL is a one-line error now, not a failure inside the service
    return BrokerLogin(args.mqtt, username, password, args.client_id)


def with_session(url: str, work: Callable[..., Awaitable[T]]) -> T:
    """Run `work` in a session on a database that is migrated to the newest revision."""

    async def run() -> T:
        engine = create_engine(url)
        try:
            with database_errors(url):
                await migrate.require_current(engine, url)
                async with session_factory(engine)() as session:
                    return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())
