"""`cloud-sync serve`: the Base and Store APIs (face enrolment included), and sync with --mqtt."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tomllib
from pathlib import Path

import cv2
from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.cli.common import (
    Commands,
    Parents,
    add_broker_login_arguments,
    broker_login_from,
    with_session,
)
from cloud_sync.desks.face_enrolment import ALL_EMBEDDERS, DEFAULT_MODELS_DIR, FaceSettings
from cloud_sync.desks.signing import KeyRing
from cloud_sync.errors import CloudSyncError, reason
from cloud_sync.web.app import create_app
from cloud_sync.web.context import CONTEXT
from models.faces.choice import DETECTOR_FILES, UnknownEmbedder, embedder_named
from models.faces.custom import CustomEmbedder, CustomEmbedderError, parse_embedders_file

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
    faces = serve.add_argument_group(
        "face enrolment",
        "POST /base_api/admin/user/{user_id}/face runs each photo through these models; without them (see "
        "`robot-agent models status --models-dir DIR`) it answers 503 and everything else is served",
    )
    faces.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        metavar="DIR",
        help="the face models, from `robot-agent models fetch` and `models build` "
        f"(default: {DEFAULT_MODELS_DIR})",
    )
    faces.add_argument(
        "--face-detector",
        choices=sorted(DETECTOR_FILES),
        default="yunet",
        help="the detector whose landmarks align and whose gate judges each photo (default: yunet)",
    )
    faces.add_argument(
        "--face-embedders-file",
        type=_embedders_file,
        metavar="FILE.toml",
        help="ONNX embedders of your own, one [embedders.NAME] table each, with the keys of robot.toml's "
        "[vision.embedders.NAME] (path, sha256, template, metric, threshold, ...); each file is checked "
        "against its sha256 when enrolment starts",
    )
    faces.add_argument(
        "--face-embedder",
        action="append",
        metavar="NAME",
        help=f"keep each face's embedding by this embedder: {', '.join(ALL_EMBEDDERS)} or a name from "
        "--face-embedders-file; repeat for several (default: every one, built in or from the file, so "
        "robots may run any)",
    )
    faces.add_argument(
        "--face-workers",
        type=_workers,
        default=1,
        metavar="N",
        help="threads enrolling photos, each with its own copy of the models (default: 1)",
    )
    serve.set_defaults(handler=_serve)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range: give 0 to 65535")
    return port


def _workers(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of threads: {text!r}") from None
    if not 1 <= workers <= 16:
        raise argparse.ArgumentTypeError(f"{workers} threads: give 1 to 16")
    return workers


def _embedders_file(text: str) -> dict[str, CustomEmbedder]:
    """The embedders a --face-embedders-file adds; relative paths are taken from the file's folder."""
    path = Path(text)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return parse_embedders_file(raw, path.resolve().parent, str(path))
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {reason(err)}") from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise argparse.ArgumentTypeError(f"{path}: not valid TOML: {err}") from err
    except CustomEmbedderError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _quiet_opencv() -> None:
    """Keep OpenCV's own warnings off stderr, as the agent does: YuNet's "setPreferableTarget Targets are
    not supported" comes from C++ straight to the stream, past logging, at every new photo size, and would
    break `--log-format json`. OPENCV_LOG_LEVEL in the environment still wins."""
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _serve(args: argparse.Namespace) -> int:
    async def check_signing(session: AsyncSession) -> list[str]:
        try:
            await KeyRing(args.keys_dir).active(session)
        except CloudSyncError as err:
            return [f"tickets cannot be issued (answered 503) until this is fixed: {err}"]
        return []

    custom: dict[str, CustomEmbedder] = args.face_embedders_file or {}
    try:
        embedders = tuple(
            embedder_named(name, custom)
            for name in dict.fromkeys(args.face_embedder or [*ALL_EMBEDDERS, *custom])
        )
    except UnknownEmbedder as err:
        raise CloudSyncError(f"--face-embedder: {err}") from err
    faces = FaceSettings(
        models_dir=args.models_dir,
        detector=args.face_detector,
        embedders=embedders,
        workers=args.face_workers,
    )
    # Checked here, not in the app's start-up, so that an old database is a one-line error before serving.
    warnings = with_session(args.db, check_signing)
    login = broker_login_from(args) if args.mqtt else None
    _quiet_opencv()
    app = create_app(
        args.db,
        args.keys_dir,
        check_migrated=False,
        page_cache_ttl=args.page_cache_ttl,
        broker=login,
        faces=faces,
    )
    access_log = logging.getLogger("aiohttp.access") if args.access_log else None
    asyncio.run(_run_site(app, args.host, args.port, access_log, warnings))
    return 0


async def _run_site(
    app: web.Application, host: str, port: int, access_log: logging.Logger | None, warnings: list[str]
) -> None:
    """Serve `app` until SIGTERM or SIGINT. "serving" is logged once the port is bound and the app started,
    then the `warnings` and how face enrolment started; a port that cannot be bound is one CloudSyncError
    naming it, and nothing else."""
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
        app[CONTEXT].faces.announce()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
