"""`cloud-sync serve`: the Base and Store APIs, and sync with --mqtt."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.cli.common import (
    Commands,
    Parents,
    add_broker_login_arguments,
    broker_login_from,
    with_session,
)
from cloud_sync.desks.signing import KeyRing
from cloud_sync.errors import CloudSyncError, reason
from cloud_sync.web.app import create_app

log = logging.getLogger("cloud_sync")


def register(commands: Commands, parents: Parents) -> None:
    db, keys_dir = parents.db, parents.keys_dir
    serve = commands.add_parser(
        "serve",
        parents=[db, keys_dir],
        help="serve the Base and Store APIs",
        description="Serve /store_api, /base_api and /openapi.json. Refuses a database that is not migrated.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8080, help="port to listen on, 0 for any free one (default: 8080)"
    )
    serve.add_argument("--access-log", action="store_true", help="log one line per request")
    serve.add_argument(
        "--page-cache-ttl",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds a store's item pages are served from memory; writes here clear them (0: off)",
    )
    serve.add_argument(
        "--mqtt",
        metavar="URL",
        help="also run sync on this broker, mqtt://HOST[:PORT]: ingest of the robots' batches (as `ingest` "
        "does) and down-sync of what robots must know (docs/sync.md)",
    )
    add_broker_login_arguments(serve, "cloud")
    serve.set_defaults(handler=_serve)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range: give 0 to 65535")
    return port


def _serve(args: argparse.Namespace) -> int:
    async def check_signing(session: AsyncSession) -> list[str]:
        try:
            await KeyRing(args.keys_dir).active(session)
        except CloudSyncError as err:
            return [f"tickets cannot be issued (answered 503) until this is fixed: {err}"]
        return []

    # Checked here, not in the app's start-up, so that an old database is a one-line error before serving.
    warnings = with_session(args.db, check_signing)
    login = broker_login_from(args) if args.mqtt else None
    app = create_app(
        args.db, args.keys_dir, check_migrated=False, page_cache_ttl=args.page_cache_ttl, broker=login
    )
    access_log = logging.getLogger("aiohttp.access") if args.access_log else None
    asyncio.run(_run_site(app, args.host, args.port, access_log, warnings))
    return 0


async def _run_site(
    app: web.Application, host: str, port: int, access_log: logging.Logger | None, warnings: list[str]
) -> None:
    """Serve `app` until SIGTERM or SIGINT. "serving" is logged once the port is bound and the app started,
    then the `warnings`; a port that cannot be bound is one CloudSyncError naming it, and nothing else."""
    # web.run_app's keep-alive and shutdown timeouts, which serve had before it bound the port itself.
    runner = web.AppRunner(app, access_log=access_log, keepalive_timeout=75.0, shutdown_timeout=60.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:
            raise CloudSyncError(f"cannot listen on {host}:{port}: {reason(err)}") from err
        log.info("serving host=%s port=%d", host, runner.addresses[0][1])
        for warning in warnings:
            log.warning("%s", warning)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
