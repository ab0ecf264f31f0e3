"""The demo wallet: a passenger's holder key, and a ticket's code as the passenger's phone would show it.

A ticket issued with a `holder_key` (docs/tickets.md, "Holder binding") is valid only as a live code the
holder's wallet signs when it shows it; `cloud-sync wallet show` plays that wallet for tests and the demo,
rendering the code as a QR in the terminal. A real wallet keeps its key on the phone; here it is a file.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from pathlib import Path

import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import TicketToken
from cloud_sync.errors import CloudSyncError
from models.keyfiles import KeyFileProblem, ed25519_pem, load_ed25519_pem, write_private_file
from models.tickets import TicketError, decode_ticket, live_code

# Error correction L: a live code of a bound ticket (~440 characters) is a version-11 symbol at L, 13 at M.
# On a phone screen photographed in a train (tests/support/qr_images.py, seed 5), L read 92.5% of 720 frames
# at 640x480 and M 83.9%; at 1280x720 (robot.toml's camera) 97.3% and 96.3% of 300. Larger modules outweigh
# the lost redundancy, glare included. The ticket's own code (qr.png, ~285 characters) stays at M, version 10.
QR_ERROR = "l"


def create_wallet_key(path: Path) -> str:
    """A new holder key in `path` (PEM, 0600); returns its public half as the hex `holder_key` of an issue."""
    key = Ed25519PrivateKey.generate()
    try:
        write_private_file(path, ed25519_pem(key))
    except FileExistsError as err:
        raise CloudSyncError(f"{path} already exists; a wallet keeps its key") from err
    except KeyFileProblem as err:
        raise CloudSyncError(str(err)) from err
    return key.public_key().public_bytes_raw().hex()


def load_wallet_key(path: Path) -> Ed25519PrivateKey:
    try:
        return load_ed25519_pem(path)
    except KeyFileProblem as err:
        raise CloudSyncError(str(err)) from err


async def ticket_token(session: AsyncSession, ticket_id: uuid.UUID) -> str:
    """The signed token issued for a ticket."""
    row = await session.get(TicketToken, ticket_id)
    if row is None:
        raise CloudSyncError(f"no token was issued for ticket {ticket_id}")
    return row.token


def wallet_code(token: str, holder: Ed25519PrivateKey | None, now: dt.datetime) -> str:
    """What the wallet shows at `now`: the live code of a bound ticket (which needs its holder's key), the
    token itself otherwise."""
    try:
        bound_to = decode_ticket(token).claims.holder_key
    except TicketError as err:
        raise CloudSyncError(f"the stored token cannot be read: {err}") from err
    if bound_to is None:
        return token
    if holder is None:
        raise CloudSyncError("the ticket is bound to a holder key: give the wallet's key file (--key)")
    if holder.public_key().public_bytes_raw() != bound_to:
        raise CloudSyncError("the key file is not the key this ticket is bound to")
    return live_code(token, holder, now)


def render_qr(code: str) -> str:
    """The code as a QR in Unicode half blocks, two rows a line: 69 columns for a live code."""
    out = io.StringIO()
    segno.make(code, error=QR_ERROR, micro=False).terminal(out, compact=True)
    return out.getvalue()
