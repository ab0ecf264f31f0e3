"""`cloud-sync`: the command line of railbot's cloud service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import shlex
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync import broker_files, broker_login, changes, gaps, migrate, provisioning, wallet
from cloud_sync.app import create_app
from cloud_sync.auth import create_token, list_tokens, revoke_token
from cloud_sync.base_api import add_robot
from cloud_sync.broker_login import BrokerLogin
from cloud_sync.database import DEFAULT_DB_URL, create_engine, database_errors, session_factory
from cloud_sync.errors import CloudSyncError, reason
from cloud_sync.ingest import Ingest
from cloud_sync.ingest_worker import IngestWorker, retire_session
from cloud_sync.schema import METADATA, ddl_statements
from cloud_sync.signing import DEFAULT_KEYS_DIR, KeyRing
from cloud_sync.tables import Role
from models import console, logformat
from models.base_api import RobotCreate, SeqGaps
from models.columns import utcnow

log = logging.getLogger("cloud_sync")

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-sync",
        description="railbot's cloud service: the seed's Base and Store APIs, tickets, and the fleet's sync.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('railbot')}")
    logformat.add_log_arguments(parser)
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    _broker_login_arguments(serve, "cloud")
    serve.set_defaults(handler=_serve)

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
    _broker_login_arguments(ingest, "ingest")
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

    token = commands.add_parser("token", help="API bearer tokens", description="API bearer tokens.")
    token_commands = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = token_commands.add_parser(
        "create",
        parents=[db],
        help="create a token and print it once",
        description="Create a bearer token and print it; only its hash is stored, so it is shown only once.",
    )
    create.add_argument(
        "--role", required=True, choices=[r.value for r in Role], help="what the token may do"
    )
    create.add_argument("--store-id", type=uuid.UUID, help="the store a store token acts for")
    create.add_argument("--robot-id", type=uuid.UUID, help="the robot a robot token belongs to")
    create.add_argument("--label", help="a note on who holds the token")
    create.set_defaults(handler=_token_create)
    tokens = token_commands.add_parser(
        "list",
        parents=[db],
        help="list the tokens (never the tokens themselves)",
        description="List every bearer token's id, role, store or robot, label and creation time.",
    )
    tokens.set_defaults(handler=_token_list)
    revoke = token_commands.add_parser(
        "revoke",
        parents=[db],
        help="revoke a token by its id",
        description="Delete a token; running services stop accepting it within 5 seconds.",
    )
    revoke.add_argument("token_id", type=uuid.UUID, metavar="ID", help="the id `token list` shows")
    revoke.set_defaults(handler=_token_revoke)

    keys = commands.add_parser(
        "keys", help="ticket-signing keys", description="Ticket-signing keys (Ed25519)."
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    listing = key_commands.add_parser(
        "list",
        parents=[db, keys_dir],
        help="list the signing keys",
        description="List every ticket-signing key: its kid, when it signed, if its private file is here.",
    )
    listing.set_defaults(handler=_keys_list)
    rotate = key_commands.add_parser(
        "rotate",
        parents=[db, keys_dir],
        help="add a new active signing key",
        description="Add a new active key (the first one, on a new database). Older keys stop signing but "
        "keep verifying the tickets they signed until those expire.",
    )
    rotate.set_defaults(handler=_keys_rotate)

    wallet = commands.add_parser(
        "wallet",
        help="a passenger's wallet (tests, demo)",
        description="A passenger's wallet, for tests and the demo: its holder key, and a ticket's code as "
        "the phone shows it (a live code, for a ticket bound to the key).",
    )
    wallet_commands = wallet.add_subparsers(dest="wallet_command", metavar="COMMAND", required=True)
    wallet_key = wallet_commands.add_parser(
        "key",
        help="create a wallet key",
        description="Create a holder key (PEM, mode 0600) and print its public half: the holder_key to "
        "issue tickets bound to it.",
    )
    wallet_key.add_argument("key_file", type=Path, metavar="FILE", help="where to write the key")
    wallet_key.set_defaults(handler=_wallet_key)
    wallet_show = wallet_commands.add_parser(
        "show",
        parents=[db],
        help="show a ticket's code as a QR",
        description="Show the code of a ticket as its holder's phone would: a bound ticket as a live code "
        "signed now (robots accept it for 30 s), an unbound one as its token.",
    )
    wallet_show.add_argument("ticket_id", type=uuid.UUID, metavar="TICKET_ID")
    wallet_show.add_argument("--key", type=Path, metavar="FILE", help="the wallet's key (bound tickets)")
    wallet_show.add_argument("--text", action="store_true", help="print the code's text instead of a QR")
    wallet_show.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="redraw a fresh code every SECONDS until interrupted, as a wallet app does",
    )
    wallet_show.set_defaults(handler=_wallet_show)

    robot = commands.add_parser("robot", help="the fleet's robots", description="The fleet's robots.")
    robot_commands = robot.add_subparsers(dest="robot_command", metavar="COMMAND", required=True)
    add = robot_commands.add_parser(
        "add",
        parents=[db],
        help="register a robot by the id and public key it has",
        description="Add a robot to the robots table under the id its robot.toml names ([robot] id), with "
        "the public key `robot-agent keys init` made (as POST /base_api/admin/robot with an id does). "
        "Refuses an id the table already has. Then `robot provision` gives it its broker login.",
    )
    add.add_argument("robot_id", type=uuid.UUID, metavar="ROBOT_ID", help="the robot's [robot] id")
    add.add_argument(
        "--public-key",
        required=True,
        metavar="PEM",
        help='its public key as `robot-agent keys show` prints it: --public-key "$(robot-agent keys show)"',
    )
    add.add_argument("--model-id", required=True, metavar="ID", help="robots.robot_model_id, e.g. rb-2")
    add.add_argument("--model-name", required=True, metavar="NAME", help="robots.robot_model_name")
    add.set_defaults(handler=_robot_add)
    provision = robot_commands.add_parser(
        "provision",
        parents=[db],
        help="give a robot its broker password and trust list",
        description="Make a new MQTT password for a robot of the robots table (replacing any old one; only "
        "its hash is stored) and write the robot's files into --out: mqtt-credentials (username:password, "
        "mode 0600) and trust.json (the ticket trust list). The password is never printed. Run "
        "`cloud-sync broker-config` afterwards and restart the broker so that it knows the new password.",
    )
    provision.add_argument("robot_id", type=uuid.UUID, metavar="ROBOT_ID", help="the robot's id (robots.id)")
    provision.add_argument(
        "--mqtt-url", required=True, metavar="URL", help="the broker the robot connects to: mqtt://HOST:PORT"
    )
    provision.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="where to write the robot's files"
    )
    provision.set_defaults(handler=_robot_provision)

    broker_config = commands.add_parser(
        "broker-config",
        parents=[db],
        help="write Mosquitto's configuration, users and ACLs",
        description="Write mosquitto.conf and dynamic-security.json (the users and ACLs of Mosquitto's "
        "dynamic-security plugin) into --out from the robots' credentials: each robot may publish only under "
        "its own up/ and subscribe only to its own down/ (any other SUBSCRIBE is refused); the ingest user "
        "subscribes to every robot's up/ and publishes every down/. The ingest user's password is made on "
        "the first run (ingest-credentials, mode 0600) and reused afterwards. Run as root where user "
        "mosquitto exists, the broker's files are root:mosquitto 0640, so that `mosquitto -c "
        "DIR/mosquitto.conf` started as root (it switches to user mosquitto) reads them; otherwise they are "
        "0600 and the broker runs as their owner. The plugin reads its file at start only: restart the "
        "broker (SIGHUP is not enough) after a change.",
    )
    broker_config.add_argument("--out", required=True, type=Path, metavar="DIR", help="the broker's folder")
    broker_config.add_argument(
        "--ingest-user",
        default=broker_files.DEFAULT_INGEST_USER,
        metavar="NAME",
        help=f"the broker user of the cloud's ingest (default: {broker_files.DEFAULT_INGEST_USER})",
    )
    default_listen = ":".join(map(str, broker_files.DEFAULT_LISTEN))
    broker_config.add_argument(
        "--listen",
        default=default_listen,
        metavar="HOST:PORT",
        help=f"the broker's listener (default: {default_listen})",
    )
    broker_config.add_argument(
        "--dynsec-plugin",
        type=Path,
        metavar="PATH",
        help="mosquitto_dynamic_security.so on the broker's machine (default: the one installed here)",
    )
    broker_config.set_defaults(handler=_broker_config)

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
    logformat.add_log_arguments_to_commands(parser)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range: give 0 to 65535")
    return port


def _broker_login_arguments(command: argparse.ArgumentParser, role: str) -> None:
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


def _broker_login(args: argparse.Namespace) -> BrokerLogin:
    username, password = broker_login.read_credentials(args.credentials) if args.credentials else (None, None)
    broker_login.mqtt_address(
        args.mqtt
    )  # a bad URL is a one-line error now, not a failure inside the service
    return BrokerLogin(args.mqtt, username, password, args.client_id)


def _with_session(url: str, work: Callable[..., Awaitable[T]]) -> T:
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


async def _nothing(_session: object) -> None:
    return None


def _serve(args: argparse.Namespace) -> int:
    async def check_signing(session: AsyncSession) -> list[str]:
        try:
            await KeyRing(args.keys_dir).active(session)
        except CloudSyncError as err:
            return [f"tickets cannot be issued (answered 503) until this is fixed: {err}"]
        return []

    # Checked here, not in the app's start-up, so that an old database is a one-line error before serving.
    warnings = _with_session(args.db, check_signing)
    login = _broker_login(args) if args.mqtt else None
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


def _ingest(args: argparse.Namespace) -> int:
    login = _broker_login(args)
    if args.retire:
        retire_session(login)
        log.info("ingest session ended client_id=%s", login.client_id)
        print(f"ended the broker session of {login.client_id}")
        return 0
    _with_session(args.db, _nothing)

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

    rows = _with_session(args.db, work)
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

    removed, upto = _with_session(args.db, work)
    log.info("change log compacted entries=%d upto=%d", removed, upto)
    print(f"deleted {removed} entries up to change {upto}")
    return 0


def _sync_gaps(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> SeqGaps:
        return await gaps.report(await session.connection())

    found = _with_session(args.db, work)
    if args.json:
        print(found.model_dump_json(indent=2))
        return 0
    print(f"{'robot':<36}  {'last seq':>10}  {'missing':>9}  gaps")
    for robot in found.robots:
        runs = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in robot.gaps) or "-"
        print(f"{robot.robot_id!s:<36}  {robot.last_seq:>10}  {robot.missing:>9}  {runs}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    reached = migrate.upgrade(args.db, args.revision, downgrade=args.downgrade)
    log.info("database at revision=%s", reached or "base")
    return 0


def _token_create(args: argparse.Namespace) -> int:
    role = Role(args.role)
    token = _with_session(
        args.db,
        lambda session: create_token(
            session, role, store_id=args.store_id, robot_id=args.robot_id, label=args.label
        ),
    )
    log.info("created a %s token", role.value)
    print(token)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    rows = _with_session(args.db, list_tokens)
    print(f"{'id':<36}  {'role':<5}  {'store or robot':<36}  {'created':<25}  label")
    for row in rows:
        owner = str(row.store_id or row.robot_id or "-")
        created = row.created_at.isoformat(timespec="seconds")
        print(f"{row.id!s:<36}  {row.role.value:<5}  {owner:<36}  {created:<25}  {row.label or ''}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    _with_session(args.db, lambda session: revoke_token(session, args.token_id))
    log.info("revoked token id=%s", args.token_id)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    ring = KeyRing(args.keys_dir)
    rows = _with_session(args.db, ring.all_keys)
    print(f"{'kid':<16}  {'created':<25}  {'retired':<25}  state    private key")
    for row in rows:
        state = "active" if row.retired_at is None else "retired"
        present = "here" if (args.keys_dir / f"ticket-{row.kid}.pem").exists() else "missing"
        retired = row.retired_at.isoformat(timespec="seconds") if row.retired_at else "-"
        print(
            f"{row.kid:<16}  {row.created_at.isoformat(timespec='seconds'):<25}  "
            f"{retired:<25}  {state:<7}  {present}"
        )
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    ring = KeyRing(args.keys_dir)
    row = _with_session(args.db, ring.rotate)
    print(row.kid)
    return 0


def _wallet_key(args: argparse.Namespace) -> int:
    print(wallet.create_wallet_key(args.key_file))
    return 0


def _wallet_show(args: argparse.Namespace) -> int:
    token = _with_session(args.db, lambda session: wallet.ticket_token(session, args.ticket_id))
    holder = wallet.load_wallet_key(args.key) if args.key else None
    if args.watch is not None and args.watch <= 0:
        raise CloudSyncError("--watch needs a positive number of seconds")
    while True:
        code = wallet.wallet_code(token, holder, utcnow())
        if args.watch is not None:
            print("\x1b[2J\x1b[H", end="")  # clear the terminal, cursor home
        print(code if args.text else wallet.render_qr(code), flush=True)
        if args.watch is None:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def _db_flag(args: argparse.Namespace) -> str:
    """` --db URL` for a printed next step, when the command ran on another database than the default."""
    return "" if args.db == DEFAULT_DB_URL else f" --db {shlex.quote(args.db)}"


def _robot_add(args: argparse.Namespace) -> int:
    try:
        body = RobotCreate(
            id=args.robot_id,
            robot_model_id=args.model_id,
            robot_model_name=args.model_name,
            public_key=args.public_key.strip() + "\n",
        )
    except ValidationError as err:
        flags = {"robot_model_id": "--model-id", "robot_model_name": "--model-name"}
        problems = [
            "--public-key: not an Ed25519 public key in PEM (as `robot-agent keys show` prints it)"
            if e["loc"] == ("public_key",)
            else f"{flags.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
            for e in err.errors()
        ]
        raise CloudSyncError(f"not a robot: {'; '.join(problems)}") from err
    robot = _with_session(args.db, lambda session: add_robot(session, body))
    print(f"robot        {robot.id}  ({robot.robot_model_name}, model {robot.robot_model_id})")
    print("public key   registered: the cloud takes batches signed with it")
    print("next: its broker login and trust list, written where its robot.toml looks for them:")
    print(f"  cloud-sync robot provision {robot.id}{_db_flag(args)} --mqtt-url mqtt://HOST:PORT --out DIR")
    return 0


def _robot_provision(args: argparse.Namespace) -> int:
    url = broker_login.parse_mqtt_url(args.mqtt_url)
    credential = _with_session(args.db, lambda session: provisioning.provision_robot(session, args.robot_id))
    written = provisioning.write_robot_files(credential, args.out)
    print(f"robot        {written.robot_id}")
    print(f"broker       {url}")
    print(f"username     {written.username}")
    print(f"credentials  {written.credentials_file}  (mode 0600)")
    print(f"trust list   {written.trust_file}  (keys: {written.trusted_keys})")
    print("robot.toml: these lines (relative paths are from its folder; on another machine, copy the files):")
    print(f'  [cloud]    mqtt_url = "{url}"')
    print(f'             credentials_file = "{written.credentials_file.resolve()}"')
    print(f'  [tickets]  trust_file = "{written.trust_file.resolve()}"')
    print("next: `cloud-sync broker-config --out DIR` gives the broker the new password; (re)start it on")
    print("  DIR/mosquitto.conf (SIGHUP does not reload it); then, on the robot,")
    print("  `robot-agent --config robot.toml run`")
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    listen = broker_files.parse_listen(args.listen)
    credentials = _with_session(args.db, provisioning.robot_credentials)
    files = broker_files.write_broker_config(
        credentials, args.out, ingest_user=args.ingest_user, listen=listen, plugin=args.dynsec_plugin
    )
    print(f"config       {files.config}")
    print(f"users, ACLs  {files.security}  ({files.robots} robots and {files.ingest_user})")
    print(f"ingest user  {files.ingest_credentials}")
    print("restart the broker for a change to take effect (SIGHUP does not reload the users)")
    if files.unreachable is not None:
        print(
            f"cloud-sync: warning: user {broker_files.BROKER_ACCOUNT} cannot enter {files.unreachable}: "
            f"a broker started as root switches to that user and will not open {files.config.parent}'s "
            "files; use a folder it can reach",
            file=sys.stderr,
        )
    return 0


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
    return console.run_command(
        "cloud-sync", lambda: int(args.handler(args)), CloudSyncError, lambda err: [f"cloud-sync: {err}"]
    )


if __name__ == "__main__":
    sys.exit(main())
