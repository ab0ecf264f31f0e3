"""`cloud-sync keys`: ticket-signing keys."""

from __future__ import annotations

import argparse

from cloud_sync.cli.common import Commands, Parents, with_session
from cloud_sync.desks.signing import KeyRing


def register(commands: Commands, parents: Parents) -> None:
    db, keys_dir = parents.db, parents.keys_dir
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


def _keys_list(args: argparse.Namespace) -> int:
    ring = KeyRing(args.keys_dir)
    rows = with_session(args.db, ring.all_keys)
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
    row = with_session(args.db, ring.rotate)
    print(row.kid)
    return 0
