"""Holder binding: a ticket that names its holder's key is shown as a live code, so a screenshot goes stale.

A ticket's claims may carry `holder_key` (claim -10), the raw Ed25519 public key of the passenger's wallet.
Such a ticket is never shown as its bare token: the wallet shows a live code, the token with a holder proof
appended, made moments before it is shown:

    live code = "RB1H:" + (the token without "RB1:") + base45(at || signature)      (102 characters)

`at` is the proof's time, 4 bytes big-endian (whole seconds since 1970, UTC); `signature` is the holder's
Ed25519 signature over `"RB1 holder proof" 0x00 || the ticket's COSE signature || at`. The ticket's own
signature names exactly one ticket, so a proof cannot move to another. A verifier accepts a proof made within
a window of its own clock (30 s by default), which a photo or a screenshot of the code outlives. Like
UIC's DOSIPAS dynamic content, and beyond the EU certificate, which a copy passes. Pure code, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.base45 import base45_decode, base45_encode
from models.cose import ED25519_SIGNATURE_BYTES
from models.ticket_codec import (
    MAX_TOKEN_CHARS,
    PREFIX,
    TicketFormatError,
    Verdict,
    decode_envelope,
)

LIVE_PREFIX: Final = "RB1H:"
_AT_BYTES: Final = 4
PROOF_BYTES: Final = _AT_BYTES + ED25519_SIGNATURE_BYTES
PROOF_CHARS: Final = PROOF_BYTES // 2 * 3  # base45: 3 characters per 2 bytes (68 is even)
HOLDER_CONTEXT: Final = b"RB1 holder proof\x00"
DEFAULT_HOLDER_WINDOW: Final = dt.timedelta(seconds=30)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class HolderProof:
    """What a live code adds to its ticket: when the wallet made it, and the holder's signature."""

    at_seconds: int  # as carried: whole seconds since 1970, UTC
    signature: bytes

    @property
    def at(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(seconds=self.at_seconds)


def holder_message(ticket_signature: bytes, at_seconds: int) -> bytes:
    """The bytes a holder signs: the context, the ticket's own COSE signature, the time."""
    return HOLDER_CONTEXT + ticket_signature + at_seconds.to_bytes(_AT_BYTES, "big")


def live_code(token: str, holder: Ed25519PrivateKey, now: dt.datetime) -> str:
    """The live code a wallet shows for `token` at `now`; raises `TicketFormatError` for a bad token and
    `ValueError` for a `now` outside 1970..2106."""
    envelope = decode_envelope(token)
    seconds = int(now.timestamp())
    if not 0 <= seconds < 2 ** (8 * _AT_BYTES):
        raise ValueError(f"{now.isoformat()} is outside what a holder proof can carry")
    signature = holder.sign(holder_message(envelope.signature, seconds))
    proof = seconds.to_bytes(_AT_BYTES, "big") + signature
    return LIVE_PREFIX + token[len(PREFIX) :] + base45_encode(proof)


def split_code(code: str) -> tuple[str, HolderProof | None]:
    """A scanned code's ticket token and its holder proof (None for a bare `RB1:` token, which is returned
    as it is); raises `TicketFormatError` for a live code whose proof cannot be read. Checks no signature."""
    if not isinstance(code, str) or not code.startswith(LIVE_PREFIX):
        return code, None
    if len(code) > MAX_TOKEN_CHARS:
        raise TicketFormatError(Verdict.TOO_LARGE, f"code is {len(code)} characters, over {MAX_TOKEN_CHARS}")
    body = code[len(LIVE_PREFIX) :]
    if len(body) <= PROOF_CHARS:
        raise TicketFormatError(
            Verdict.BAD_HOLDER_PROOF,
            f"live code of {len(code)} characters has no room for a ticket and its "
            f"{PROOF_CHARS}-character holder proof",
        )
    try:
        proof = base45_decode(body[-PROOF_CHARS:])
    except ValueError as err:
        raise TicketFormatError(Verdict.BAD_BASE45, f"holder proof: base45: {err}") from err
    at_seconds = int.from_bytes(proof[:_AT_BYTES], "big")
    return PREFIX + body[:-PROOF_CHARS], HolderProof(at_seconds, proof[_AT_BYTES:])
