"""`robot-agent tui`: the engineers' terminal UI over the local control API's socket."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models import logformat
from robot_agent.cli.common import Commands


def register(commands: Commands) -> None:
    tui = commands.add_parser(
        "tui",
        help="the engineers' terminal UI (talks to a running agent through [api] socket)",
        description="Open the engineers' terminal UI on the agent's local control API ([api] socket of "
        "the configuration). Log in by tapping an engineer's card on the robot's reader, or with login and "
        "password (p). Screens: 1 overview, 2 checks, 3 hardware, 4 faces, 5 store, 6 logs, 7 sync; ctrl+o "
        "logs out, ctrl+q quits. Hardware and face actions ask for the password once a session. Keyboard "
        "only; works in 80x24 over SSH. With no agent on the socket it says so and retries every 2 s. Log "
        "lines go to [logging] file if set, never onto the screen.",
    )
    tui.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="the robot's configuration file (as robot-agent --config)",
    )
    tui.set_defaults(handler=_tui)


def _tui(args: argparse.Namespace) -> int:
    from robot_agent.config import load_config
    from robot_agent.tui.app import TuiApp
    from robot_agent.tui.client import ApiClient

    # The UI needs only [api] socket: the robot's keys and credentials may live where the agent runs.
    config = load_config(args.config, key_may_be_missing=True, provisioned_may_be_missing=True)
    settings = config.logging
    if settings.file is not None:
        settings.file.parent.mkdir(parents=True, exist_ok=True)
        logformat.configure(
            args.log_level or settings.level, args.log_format or settings.format, str(settings.file)
        )
    else:
        logging.disable(logging.CRITICAL)  # a line on stderr would tear the screen
    TuiApp(ApiClient(config.api.socket)).run()
    return 0
