"""`cloud-sync ingest`, `changes` and `sync`: the robots' batches, the change log, the gaps ingest sees."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal

from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.cli.common import (
    Commands,
    Parents,
    add_broker_login_arguments,
    broker_login_from,
    with_session,
)
from cloud_sync.db import changes
from cloud_sync.db.database import create_engine
from cloud_sync.errors import CloudSyncError
from cloud_sync.sync import gaps
from cloud_sync.sync.ingest import Ingest
from cloud_sync.sync.ingest_worker import IngestWorker, retire_session
from models.base_api import SeqGaps
from models.columns import utcnow

log = logging.getLogger("cloud_sync")


def register(commands: Commands, parents: Parents) -> None:
    db = parents.db
    ingest = commands.add_parser(
        "ingest",
        parents=[db],
        help="apply the robots' sync batches from the MQTT broker",
        description="Take robots' batches from the broker (shared subscription $share/ingest/...), verify "
        "and apply each exactly once, and acknowledge it on the robot's down/ack (docs/sync.md). Several "
        "ingest processes share the load. Runs until SIGTERM or SIGINT. With --retire, ends instead the "
        "broker session of the stopped worker --client-id names, so the shared group stops feeding it.",
    )
    ingest.add_argument("--mqtt", required=True, metavar="URL", help="the broker, mqtt://HOST[:PORT]")
    add_broker_login_arguments(ingest, "ingest")
    ingest.add_argument(
        "--retire",
        action="store_true",
        help="end the broker session of a worker taken out of service (stop it first) and exit; until then "
        "the broker keeps handing it a share of the batches for 24 h, and robots wait out each one",
    )
    ingest.set_defaults(handler=_ingest)

    log_parser = commands.add_parser(
        "changes",
        help="the change log robots sync down from",
        description='The change log robots sync down from (docs/sync.md, "Down-sync").',
    )
    log_commands = log_parser.add_subparsers(dest="changes_command", metavar="COMMAND", required=True)
    log_status = log_commands.add_parser(
        "status",
        parents=[db],
        help="entries, newest id and compaction floor per scope",
        description="Print one line per scope: entries kept, the newest change id, and the floor below "
        "which robots get a snapshot.",
    )
    log_status.set_defaults(handler=_changes_status)
    compact = log_commands.add_parser(
        "compact",
        parents=[db],
        help="delete old entries; robots behind them get a snapshot",
        description="Delete the log's entries older than --keep-days. A robot whose cursor is behind what "
        "was deleted gets a snapshot of the scope on its next sync instead of the log.",
    )
    compact.add_argument(
        "--keep-days",
        type=float,
        required=True,
        metavar="DAYS",
        help="keep entries from the last DAYS days (0: delete all)",
    )
    compact.set_defaults(handler=_changes_compact)

    sync_parser = commands.add_parser(
        "sync",
        help="what ingest has seen of the robots' events",
        description="What ingest has seen of the robots' events (docs/sync.md).",
    )
    sync_commands = sync_parser.add_subparsers(dest="sync_command", metavar="COMMAND", required=True)
    sync_gaps = sync_commands.add_parser(
        "gaps",
        parents=[db],
        help="per robot, the sequence numbers that never reached ingest",
        description="Print one line per robot that has sent a batch: its highest seq, how many seqs below it "
        "never reached ingest, and those as ranges. A gap closes when its events arrive; one that stays open "
        'is events lost on the way (docs/sync.md, "Gaps").',
    )
    sync_gaps.add_argument(
        "--json", action="store_true", help="print what GET /base_api/admin/sync/gaps answers instead"
    )
    sync_gaps.set_defaults(handler=_sync_gaps)


async def _nothing(_session: object) -> None:
    return None


def _ingest(args: argparse.Namespace) -> int:
    login = broker_login_from(args)
    if args.retire:
        retire_session(login)
        log.info("ingest session ended client_id=%s", login.client_id)
        print(f"ended the broker session of {login.client_id}")
        return 0
    with_session(args.db, _nothing)

    async def run() -> None:
        engine = create_engine(args.db)
        worker = IngestWorker(Ingest(engine), login)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        task = asyncio.create_task(worker.run())
        log.info("ingest running broker=%s", args.mqtt)
        try:
            await stop.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.dispose()
            log.info("ingest stopped batches=%d", worker.handled)

    asyncio.run(run())
    return 0


def _changes_status(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[tuple[str, int, int, int]]:
        conn = await session.connection()
        return await conn.run_sync(changes.status)

    rows = with_session(args.db, work)
    print(f"{'scope':<46} {'entries':>9} {'newest':>10} {'floor':>10}")
    for scope, entries, newest, floor in rows:
        print(f"{scope:<46} {entries:>9} {newest:>10} {floor:>10}")
    return 0


def _changes_compact(args: argparse.Namespace) -> int:
    if args.keep_days < 0:
        raise CloudSyncError(f"--keep-days must be 0 or more, not {args.keep_days:g}")
    before = utcnow() - dt.timedelta(days=args.keep_days)

    async def work(session: AsyncSession) -> tuple[int, int]:
        conn = await session.connection()
        done = await conn.run_sync(changes.compact_before, before)
        await session.commit()
        return done

    removed, upto = with_session(args.db, work)
    log.info("change log compacted entries=%d upto=%d", removed, upto)
    print(f"deleted {removed} entries up to change {upto}")
    return 0


def _sync_gaps(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> SeqGaps:
        return await gaps.report(await session.connection())

    found = with_session(args.db, work)
    if args.json:
        print(found.model_dump_json(indent=2))
        return 0
    print(f"{'robot':<36}  {'last seq':>10}  {'missing':>9}  gaps")
    for robot in found.robots:
        runs = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in robot.gaps) or "-"
        print(f"{robot.robot_id!s:<36}  {robot.last_seq:>10}  {robot.missing:>9}  {runs}")
    return 0
