"""`cloud-sync wallet`: a passenger's wallet, for tests and the demo."""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from cloud_sync.cli.common import Commands, Parents, with_session
from cloud_sync.desks import wallet
from cloud_sync.errors import CloudSyncError
from models.columns import utcnow


def register(commands: Commands, parents: Parents) -> None:
    db = parents.db
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


def _wallet_key(args: argparse.Namespace) -> int:
    print(wallet.create_wallet_key(args.key_file))
    return 0


def _wallet_show(args: argparse.Namespace) -> int:
    token = with_session(args.db, lambda session: wallet.ticket_token(session, args.ticket_id))
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
