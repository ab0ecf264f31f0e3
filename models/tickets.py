"""Signed ticket tokens (RB1): the public surface of `models.base45`, `models.cose`, `models.ticket_codec`,
`models.ticket_claims`, `models.ticket_holder` and `models.ticket_verify`.

A ticket is `"RB1:" + base45(zlib(COSE_Sign1(CWT claims)))`, signed with Ed25519 and verified offline on the
robot; a ticket bound to its holder's wallet is shown as a live code (`models.ticket_holder`). The format
is described byte by byte in `docs/tickets.md`.
"""

from __future__ import annotations

from models.base45 import BASE45_ALPHABET, base45_decode, base45_encode
from models.cose import key_id, sig_structure
from models.ticket_claims import (
    CLAIMS,
    ClaimSpec,
    DecodedTicket,
    TicketClaims,
    claims_to_cbor,
    decode_claims,
    decode_ticket,
    encode_ticket,
)
from models.ticket_codec import (
    MAX_COMPRESSED_BYTES,
    MAX_COSE_BYTES,
    MAX_TOKEN_CHARS,
    PREFIX,
    TicketEnvelope,
    TicketError,
    TicketFormatError,
    Verdict,
    decode_envelope,
)
from models.ticket_holder import (
    DEFAULT_HOLDER_WINDOW,
    LIVE_PREFIX,
    HolderProof,
    holder_message,
    live_code,
    split_code,
)
from models.ticket_verify import Assignment, TrustedKey, VerificationResult, verify_ticket

__all__ = [
    "BASE45_ALPHABET",
    "CLAIMS",
    "DEFAULT_HOLDER_WINDOW",
    "LIVE_PREFIX",
    "MAX_COMPRESSED_BYTES",
    "MAX_COSE_BYTES",
    "MAX_TOKEN_CHARS",
    "PREFIX",
    "Assignment",
    "ClaimSpec",
    "DecodedTicket",
    "HolderProof",
    "TicketClaims",
    "TicketEnvelope",
    "TicketError",
    "TicketFormatError",
    "TrustedKey",
    "Verdict",
    "VerificationResult",
    "base45_decode",
    "base45_encode",
    "claims_to_cbor",
    "decode_claims",
    "decode_envelope",
    "decode_ticket",
    "encode_ticket",
    "holder_message",
    "key_id",
    "live_code",
    "sig_structure",
    "split_code",
    "verify_ticket",
]
