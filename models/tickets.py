"""Signed ticket tokens (RB1): the public surface of `models.base45`, `models.ticket_codec`,
`models.ticket_claims` and `models.ticket_verify`.

A ticket is `"RB1:" + base45(zlib(COSE_Sign1(CWT claims)))`, signed with Ed25519 and verified offline on the
robot. The format is described byte by byte in `docs/tickets.md`.
"""

from __future__ import annotations

from models.base45 import BASE45_ALPHABET, base45_decode, base45_encode
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
    key_id,
    sig_structure,
)
from models.ticket_verify import Assignment, TrustedKey, VerificationResult, verify_ticket

__all__ = [
    "BASE45_ALPHABET",
    "CLAIMS",
    "MAX_COMPRESSED_BYTES",
    "MAX_COSE_BYTES",
    "MAX_TOKEN_CHARS",
    "PREFIX",
    "Assignment",
    "ClaimSpec",
    "DecodedTicket",
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
    "key_id",
    "sig_structure",
    "verify_ticket",
]
