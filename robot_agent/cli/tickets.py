"""`robot-agent verify-ticket`: check a ticket offline as the camera would, and record the check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robot_agent.cli.common import Commands, load


def register(commands: Commands) -> None:
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


def _verify_ticket(args: argparse.Namespace) -> int:
    from robot_agent.store.database import open_store
    from robot_agent.tickets import CheckMethod, TicketDesk

    config = load(args)
    if args.image is not None:
        from robot_agent.vision.scan import codes_in_image  # OpenCV: only for a photo

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
