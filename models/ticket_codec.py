"""The RB1 token's layers: `"RB1:" + base45(zlib(COSE_Sign1(payload)))`, sealed and opened layer by layer.

Pure code, no I/O. `docs/tickets.md` describes the format byte by byte; `models.cose` owns the COSE_Sign1
envelope and `models.cbor` the CBOR; `models.ticket_claims` says what the payload means,
`models.ticket_verify` decides whether a decoded ticket is acceptable. Every decoding failure is a
`TicketFormatError` carrying the verdict of the layer that failed and a reason naming the problem.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from zlib_ng import zlib_ng

from models.base45 import base45_decode, base45_encode
from models.cose import CoseError, CoseProblem, CoseSign1, cose_open, cose_sign
from models.errors import ModelsError

PREFIX: Final = "RB1:"

# The largest QR code (version 40, level L) holds 4,296 alphanumeric characters: no scanned ticket is longer.
MAX_TOKEN_CHARS: Final = 4296
# The largest valid claims (every text claim at its length limit in 4-byte UTF-8) make a COSE_Sign1 of 1,173
# bytes, at worst ~1,185 once zlib has failed to shrink it; the caps leave room above that and stop a zip bomb
# after 2 KiB of output.
MAX_COMPRESSED_BYTES: Final = 1536
MAX_COSE_BYTES: Final = 2048


class Verdict(StrEnum):
    """The outcome of verifying a ticket: `VALID`, or the first check that failed."""

    VALID = "valid"
    BAD_PREFIX = "bad_prefix"
    BAD_BASE45 = "bad_base45"
    BAD_ZLIB = "bad_zlib"
    TOO_LARGE = "too_large"
    BAD_CBOR = "bad_cbor"
    BAD_COSE = "bad_cose"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_KEY = "unknown_key"
    KEY_NOT_VALID_AT_ISSUE = "key_not_valid_at_issue"
    BAD_SIGNATURE = "bad_signature"
    BAD_CLAIMS = "bad_claims"
    BAD_HOLDER_PROOF = "bad_holder_proof"
    HOLDER_PROOF_MISSING = "holder_proof_missing"
    HOLDER_PROOF_STALE = "holder_proof_stale"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_TRAIN = "wrong_train"
    WRONG_DATE = "wrong_date"
    REVOKED = "revoked"
    ALREADY_USED = "already_used"


# The verdict of each layer of the envelope that can fail.
_COSE_VERDICTS: Final = {
    CoseProblem.CBOR: Verdict.BAD_CBOR,
    CoseProblem.COSE: Verdict.BAD_COSE,
    CoseProblem.ALGORITHM: Verdict.UNSUPPORTED_ALGORITHM,
}


class TicketError(ModelsError):
    """Base of every ticket error."""


class TicketFormatError(TicketError):
    """A token that cannot be decoded; `verdict` names the layer, `reason` the exact problem."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(f"{verdict.value}: {reason}")
        self.verdict = verdict
        self.reason = reason


def _inflate(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        # Asking for one byte more than the cap tells "exactly at the cap" from "beyond it" without
        # ever holding more than MAX_COSE_BYTES + 1 bytes of a zip bomb.
        cose = inflater.decompress(compressed, MAX_COSE_BYTES + 1)
    except zlib.error as err:
        raise TicketFormatError(Verdict.BAD_ZLIB, f"zlib: {err}") from err
    if len(cose) > MAX_COSE_BYTES:
        raise TicketFormatError(Verdict.TOO_LARGE, f"decompresses to more than {MAX_COSE_BYTES} bytes")
    if not inflater.eof:
        raise TicketFormatError(Verdict.BAD_ZLIB, "zlib: stream is truncated")
    if inflater.unused_data:
        raise TicketFormatError(
            Verdict.BAD_ZLIB, f"zlib: {len(inflater.unused_data)} bytes after the end of the stream"
        )
    return cose


@dataclass(frozen=True)
class TicketEnvelope(CoseSign1):
    """Every layer of a token down to the signed payload. Nothing here is authenticated yet."""

    compressed: bytes


def seal(payload: bytes, private_key: Ed25519PrivateKey) -> str:
    """Sign `payload` with `private_key` and wrap it in every layer: a token. Deterministic, as Ed25519 is."""
    cose = cose_sign(payload, private_key)
    # Stdlib zlib takes ~13 us here at every level, strategy, window and memLevel tried: a third of an
    # issue. zlib-ng's level 1 writes a standard zlib stream of the same size (+2 bytes) in ~2.5 us.
    compressed = zlib_ng.compress(cose, 1)
    # A guard so that we never issue what we would refuse; valid claims stay far below (see the caps above).
    if len(cose) > MAX_COSE_BYTES or len(compressed) > MAX_COMPRESSED_BYTES:
        raise TicketError(f"ticket too large: {len(cose)} bytes of COSE, {len(compressed)} compressed")
    return PREFIX + base45_encode(compressed)


def decode_envelope(token: str) -> TicketEnvelope:
    """Undo prefix, base45, zlib, CBOR and COSE; raises `TicketFormatError`. Checks no signature."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise TicketFormatError(Verdict.BAD_PREFIX, f"token does not start with {PREFIX!r}")
    if len(token) > MAX_TOKEN_CHARS:
        raise TicketFormatError(
            Verdict.TOO_LARGE, f"token is {len(token)} characters, over {MAX_TOKEN_CHARS}"
        )
    try:
        compressed = base45_decode(token[len(PREFIX) :])
    except ValueError as err:
        raise TicketFormatError(Verdict.BAD_BASE45, f"base45: {err}") from err
    if len(compressed) > MAX_COMPRESSED_BYTES:
        raise TicketFormatError(
            Verdict.TOO_LARGE, f"compressed data is {len(compressed)} bytes, over {MAX_COMPRESSED_BYTES}"
        )
    try:
        envelope = cose_open(_inflate(compressed))
    except CoseError as err:
        raise TicketFormatError(_COSE_VERDICTS[err.problem], err.reason) from err
    return TicketEnvelope(**vars(envelope), compressed=compressed)
