"""`robot-agent`: the command line of the on-robot agent, one module per group of commands.

Each module imports what its handlers need inside them (the store, the ticket desk, OpenCV, the face
pipeline, ONNX Runtime), so `--help`, a parse error and `check-config` do not wait for the rest."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from models import console, logformat
from robot_agent.cli import check_config, common, database, faces, keys, run, tickets, tui, weights
from robot_agent.errors import ConfigError, RobotAgentError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-agent",
        description="railbot's on-robot agent: tickets, faces, hardware and sync, working offline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('railbot')}")
    parser.add_argument(
        "--config",
        type=Path,
        default=common.DEFAULT_CONFIG,
        metavar="PATH",
        help=f"the robot's configuration file (default: {common.DEFAULT_CONFIG})",
    )
    logformat.add_log_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In the order `robot-agent --help` lists them.
    for register in (
        check_config.register,
        keys.register,
        tickets.register,
        database.register,
        weights.register,
        faces.register,
        run.register,
        tui.register,
    ):
        register(commands)
    logformat.add_log_arguments_to_commands(parser)
    return parser


def _quiet_opencv() -> None:
    """Keep OpenCV's own warnings off stderr.

    OpenCV writes them from C++ straight to the stream ("[ WARN:0@0.150] global cap_v4l.cpp:915 open
    VIDEOIO(V4L2:/dev/video0): can't open camera by index", at every reopening of a missing camera), past
    logging, so they would break `--log-format json`; the camera logs its own line per outage, naming the
    source. Through the environment, which OpenCV reads when it first logs, rather than
    cv2.utils.logging.setLogLevel: a command that never loads OpenCV does not import it (~80 ms) to silence
    it. OPENCV_LOG_LEVEL in the environment still wins, to debug a device.
    """
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logformat.configure(args.log_level or "INFO", args.log_format or "text")
    # Alembic logs "setup plugin ..." at INFO when it is first imported. It used to load with the program,
    # before logging was set up, so those lines went nowhere; now the store loads in the handlers, after.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
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
