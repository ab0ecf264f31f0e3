"""The RB1 token's layers: `"RB1:" + base45(zlib(COSE_Sign1(payload)))`, sealed and opened layer by layer.

Pure code, no I/O. `docs/tickets.md` describes the format byte by byte; `models.ticket_claims` says what the
payload means, `models.ticket_verify` decides whether a decoded ticket is acceptable. Every decoding failure
is a `TicketFormatError` carrying the verdict of the layer that failed and a reason naming the problem.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from zlib_ng import zlib_ng

from models.base45 import base45_decode, base45_encode

PREFIX: Final = "RB1:"

# The largest QR code (version 40, level L) holds 4,296 alphanumeric characters: no scanned ticket is longer.
MAX_TOKEN_CHARS: Final = 4296
# The largest valid claims (every text claim at its length limit in 4-byte UTF-8) make a COSE_Sign1 of 1,173
# bytes, at worst ~1,185 once zlib has failed to shrink it; the caps leave room above that and stop a zip bomb
# after 2 KiB of output.
MAX_COMPRESSED_BYTES: Final = 1536
MAX_COSE_BYTES: Final = 2048

COSE_SIGN1_TAG: Final = 18
HEADER_ALG: Final = 1
HEADER_CRIT: Final = 2
HEADER_KID: Final = 4
ALG_EDDSA: Final = -8
KID_BYTES: Final = 8
ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64

_CBOR_TYPE_NAMES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "a boolean"),  # before int: bool is an int in Python, its own type in CBOR
    (int, "an integer"),
    (bytes, "a byte string"),
    (str, "a text string"),
    (float, "a float"),
    (list, "an array"),
    (dict, "a map"),
    (type(None), "null"),
)


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


class TicketError(Exception):
    """Base of every ticket error."""


class TicketFormatError(TicketError):
    """A token that cannot be decoded; `verdict` names the layer, `reason` the exact problem."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(f"{verdict.value}: {reason}")
        self.verdict = verdict
        self.reason = reason


def key_id(public_key_raw: bytes) -> bytes:
    """The `kid` of an Ed25519 public key: the first 8 bytes of SHA-256 of its raw 32 bytes."""
    if len(public_key_raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key is 32 raw bytes, not {len(public_key_raw)}")
    return hashlib.sha256(public_key_raw).digest()[:KID_BYTES]


def describe_cbor(value: object) -> str:
    """A CBOR type name for reasons; never the value itself, which may be large or hostile."""
    if isinstance(value, cbor2.CBORTag):
        return f"a tag {value.tag}"
    for kind, name in _CBOR_TYPE_NAMES:
        if isinstance(value, kind):
            return name
    # cbor2 turns well-known tags and simple values into Python objects (datetime, UUID, set, ...).
    return f"a tagged or special value ({type(value).__name__})"


def show_int(value: int) -> str:
    """An integer for a reason; a huge one is not worth printing (and past 4,300 digits Python refuses)."""
    return str(value) if -(2**64) <= value < 2**64 else "a big integer"


try:
    # cbor2 5.9 decodes a stray "break" byte (0xff) as a marker object instead of failing: find it, refuse it.
    _STRAY_BREAK: object = cbor2.loads(b"\xff")
except cbor2.CBORDecodeError:  # a cbor2 that refuses it itself
    _STRAY_BREAK = object()


def _has_stray_break(value: object) -> bool:
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        if item is _STRAY_BREAK:
            return True
        if id(item) in seen:  # shared references (tags 28/29) can make cycles
            continue
        seen.add(id(item))
        if isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, cbor2.CBORTag):
            pending.append(item.value)
    return False


def load_cbor(data: bytes, *, stray_breaks: bool = True) -> object:
    """Decode exactly one CBOR item; raises `ValueError` for malformed data or bytes after the item.

    `stray_breaks=False` skips looking for a break (0xff) outside an indefinite-length item, for a caller
    that checks the type of every value it takes (a break decodes to a marker object that fits no type)."""
    stream = io.BytesIO(data)
    try:
        value: object = cbor2.CBORDecoder(stream).decode()
    except Exception as err:
        # cbor2's tag decoders raise more than CBORDecodeError (decimal.Overflow, ValueError from big
        # integers, RecursionError): all of them mean the same thing here, bytes that are not our CBOR.
        raise ValueError(f"{type(err).__name__}: {str(err)[:120]}") from err
    if stream.tell() != len(data):
        raise ValueError(f"{len(data) - stream.tell()} bytes after the CBOR item")
    # A stray break can only come from a 0xff byte; most data has none, and looking for one is a memchr
    # while walking the decoded value is half of what decoding a sync batch costs.
    if stray_breaks and b"\xff" in data and _has_stray_break(value):
        raise ValueError("a break (0xff) outside an indefinite-length item")
    return value


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
class TicketEnvelope:
    """Every layer of a token down to the signed payload. Nothing here is authenticated yet."""

    compressed: bytes
    cose: bytes
    protected: bytes  # the protected header exactly as signed
    protected_header: Mapping[int | str, object]
    payload: bytes
    signature: bytes
    kid: bytes

    def to_be_signed(self) -> bytes:
        """The RFC 9052 Sig_structure the signature covers (no external AAD)."""
        return sig_structure(self.protected, self.payload)


# CBOR is written by hand on the way out: each item a token needs takes ~1 us this way against ~4 us through
# cbor2, and issuing is measured against the signature alone (bench/bench_tickets.py). Reading stays with
# cbor2. The tests hold every item to cbor2's deterministic encoding.
_HEADS: Final = tuple(struct.Struct(fmt) for fmt in (">B", ">BB", ">BH", ">BI", ">BQ"))


def cbor_head(major: int, argument: int) -> bytes:
    """The head of a CBOR item (major type and argument) in the shortest form, as RFC 8949 §4.2.1 requires."""
    initial = major << 5
    if argument < 24:
        return _HEADS[0].pack(initial | argument)
    if argument < 0x100:
        return _HEADS[1].pack(initial | 24, argument)
    if argument < 0x10000:
        return _HEADS[2].pack(initial | 25, argument)
    if argument < 0x100000000:
        return _HEADS[3].pack(initial | 26, argument)
    return _HEADS[4].pack(initial | 27, argument)


def cbor_int(value: int) -> bytes:
    """A CBOR integer (major type 0, or 1 for -1 - n) of at most 64 bits."""
    return cbor_head(0, value) if value >= 0 else cbor_head(1, ~value)


def cbor_bytes(value: bytes) -> bytes:
    """A CBOR byte string (major type 2)."""
    return cbor_head(2, len(value)) + value


def cbor_text(value: str) -> bytes:
    """A CBOR text string (major type 3)."""
    raw = value.encode("utf-8")
    return cbor_head(3, len(raw)) + raw


_EMPTY_MAP: Final = cbor_head(5, 0)
_EMPTY_BYTES: Final = cbor_head(2, 0)
# The 13-byte protected header {1 (alg): -8 (EdDSA), 4 (kid): <8 bytes>} up to the kid itself.
_PROTECTED_BEFORE_KID: Final = (
    cbor_head(5, 2)  # a map of 2
    + cbor_int(HEADER_ALG)
    + cbor_int(ALG_EDDSA)
    + cbor_int(HEADER_KID)
    + cbor_head(2, KID_BYTES)  # a byte string of 8
)
_COSE_SIGN1_START: Final = cbor_head(6, COSE_SIGN1_TAG) + cbor_head(4, 4)  # tag 18, array of 4
_SIG_STRUCTURE_START: Final = cbor_head(4, 4) + cbor_text("Signature1")


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """`["Signature1", protected, external_aad = b"", payload]` as CBOR: the bytes Ed25519 signs."""
    return _SIG_STRUCTURE_START + cbor_bytes(protected) + _EMPTY_BYTES + cbor_bytes(payload)


def cose_sign1(protected: bytes, payload: bytes, signature: bytes) -> bytes:
    """`tag 18([protected, {}, payload, signature])`, the only COSE_Sign1 form RB1 accepts."""
    return b"".join(
        (_COSE_SIGN1_START, cbor_bytes(protected), _EMPTY_MAP, cbor_bytes(payload), cbor_bytes(signature))
    )


@functools.lru_cache(maxsize=1)
def _protected_header(private_key: Ed25519PrivateKey) -> bytes:
    # Deriving the public key and its kid is ~4 us of a ~60 us issue, the same for every ticket. An issuer
    # signs with one key at a time: one entry, which keeps a reference to that key until another one signs.
    return _PROTECTED_BEFORE_KID + key_id(private_key.public_key().public_bytes_raw())


def cose_sign(payload: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """`payload` in a COSE_Sign1 signed with `private_key` (EdDSA, its kid in the protected header): the
    envelope of tickets, and of the robots' sync batches."""
    protected = _protected_header(private_key)
    return cose_sign1(protected, payload, private_key.sign(sig_structure(protected, payload)))


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


def _header_map(value: object, which: str) -> dict[int | str, object]:
    if not isinstance(value, dict):
        raise TicketFormatError(Verdict.BAD_COSE, f"{which} header is {describe_cbor(value)}, not a map")
    for label in value:
        # RFC 9052: a header label is an integer or a text string.
        if not isinstance(label, int | str) or isinstance(label, bool):
            raise TicketFormatError(
                Verdict.BAD_COSE, f"{which} header has a label that is {describe_cbor(label)}"
            )
    return value


def _parse_cose(compressed: bytes, cose: bytes, item: object) -> TicketEnvelope:
    def bad(reason: str) -> TicketFormatError:
        return TicketFormatError(Verdict.BAD_COSE, reason)

    if not isinstance(item, cbor2.CBORTag):
        raise bad(f"{describe_cbor(item)} without CBOR tag 18; RB1 needs a tagged COSE_Sign1")
    if item.tag != COSE_SIGN1_TAG:
        raise bad(f"CBOR tag {item.tag}, not COSE_Sign1 (18)")
    parts: object = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        shape = f"an array of {len(parts)}" if isinstance(parts, list) else describe_cbor(parts)
        raise bad(f"COSE_Sign1 is {shape}, not an array of 4")
    protected, unprotected_value, payload, signature = parts
    if type(protected) is not bytes:
        raise bad(f"protected header is {describe_cbor(protected)}, not a byte string")
    if payload is None:
        raise bad("detached payload (nil) is not supported")
    if type(payload) is not bytes:
        raise bad(f"payload is {describe_cbor(payload)}, not a byte string")
    if type(signature) is not bytes:
        raise bad(f"signature is {describe_cbor(signature)}, not a byte string")
    unprotected = _header_map(unprotected_value, "unprotected")
    try:
        # RFC 9052: a zero-length protected bstr stands for an empty map.
        decoded_header = load_cbor(protected) if protected else {}
    except ValueError as err:
        raise bad(f"protected header is not CBOR: {err}") from err
    header = _header_map(decoded_header, "protected")
    if both := header.keys() & unprotected.keys():
        labels = sorted(repr(label)[:40] if isinstance(label, str) else show_int(label) for label in both)
        raise bad(
            f"header parameters {', '.join(labels)} are in both the protected and the unprotected header"
        )
    if HEADER_CRIT in header:
        raise bad("critical header parameters (crit, 2) are not supported")

    alg = header.get(HEADER_ALG)
    if alg is None:
        where = "only in the unprotected header" if HEADER_ALG in unprotected else "missing"
        raise TicketFormatError(Verdict.UNSUPPORTED_ALGORITHM, f"alg (1) is {where}; RB1 needs EdDSA (-8)")
    if type(alg) is not int or alg != ALG_EDDSA:
        shown = show_int(alg) if type(alg) is int else describe_cbor(alg)
        raise TicketFormatError(Verdict.UNSUPPORTED_ALGORITHM, f"alg is {shown}, not EdDSA (-8)")

    kid = header.get(HEADER_KID)
    if kid is None:
        if HEADER_KID in unprotected:
            raise bad("kid is only in the unprotected header; RB1 requires it in the protected header")
        raise bad("no kid (4) in the protected header")
    if type(kid) is not bytes or len(kid) != KID_BYTES:
        shown = f"{len(kid)} bytes" if type(kid) is bytes else describe_cbor(kid)
        raise bad(f"kid is {shown}; RB1 kids are {KID_BYTES} bytes")
    if unprotected:
        # Unprotected headers are not signed: refusing them leaves no unauthenticated bytes in a token.
        raise bad("unprotected header must be empty")
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise bad(f"signature is {len(signature)} bytes; Ed25519 signatures are 64")
    if cose_sign1(protected, payload, signature) != cose:
        # Non-minimal lengths or indefinite-length strings would be unsigned variants of a signed ticket.
        raise bad("COSE_Sign1 is not in deterministic (shortest-form) encoding")
    return TicketEnvelope(compressed, cose, protected, MappingProxyType(header), payload, signature, kid)


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
    return cose_open(_inflate(compressed), compressed)


def cose_open(cose: bytes, compressed: bytes = b"") -> TicketEnvelope:
    """Parse a COSE_Sign1 as RB1 requires it (EdDSA, kid in the protected header, nothing unprotected,
    deterministic encoding); raises `TicketFormatError`. Checks no signature."""
    try:
        item = load_cbor(cose)
    except ValueError as err:
        raise TicketFormatError(Verdict.BAD_CBOR, f"cbor: {err}") from err
    return _parse_cose(compressed, cose, item)
