"""`robot-agent check-config`: validate a robot.toml, naming every bad key."""

from __future__ import annotations

import argparse
from pathlib import Path

from robot_agent.cli.common import Commands


def register(commands: Commands) -> None:
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


def _check_config(args: argparse.Namespace) -> int:
    from robot_agent.config import PROVISION_HINT, load_config

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
    api = config.api
    cards = "card logins" if api.card_key_file.exists() else "password logins only (no card key yet)"
    print(f"  local API {api.socket}, {cards}")
    print(f"  behaviour speaks {config.behaviour.language}, gate opens {config.behaviour.gate_pulse_ms} ms")
    return 0
