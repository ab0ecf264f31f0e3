"""COSE_Sign1 (RFC 9052) as the project signs it: EdDSA, the key's kid in the protected header, nothing
unprotected, deterministic encoding. The envelope of the RB1 tickets (`models.ticket_codec`) and of the
robots' sync batches (`models.sync_batch`).

Pure code, no I/O. `docs/tickets.md` describes the envelope byte by byte. Every parsing failure is a
`CoseError` whose `problem` says which layer failed (CBOR, the COSE structure, the algorithm) and whose
`reason` names the problem; each user translates it into its own error.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.cbor import cbor_bytes, cbor_head, cbor_int, cbor_text, describe_cbor, load_cbor, show_int
from models.errors import ModelsError

COSE_SIGN1_TAG: Final = 18
HEADER_ALG: Final = 1
HEADER_CRIT: Final = 2
HEADER_KID: Final = 4
ALG_EDDSA: Final = -8
KID_BYTES: Final = 8
ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64


class CoseProblem(StrEnum):
    """Which layer of a COSE_Sign1 failed to parse."""

    CBOR = "cbor"  # not one CBOR item
    COSE = "cose"  # CBOR, but not the COSE_Sign1 form we accept
    ALGORITHM = "algorithm"  # a COSE_Sign1 with no algorithm, or one other than EdDSA


class CoseError(ModelsError):
    """A COSE_Sign1 that cannot be parsed; `problem` names the layer, `reason` the exact problem."""

    def __init__(self, problem: CoseProblem, reason: str) -> None:
        super().__init__(f"{problem.value}: {reason}")
        self.problem = problem
        self.reason = reason


@dataclass(frozen=True)
class CoseSign1:
    """A parsed COSE_Sign1 down to the signed payload. Nothing here is authenticated yet."""

    cose: bytes
    protected: bytes  # the protected header exactly as signed
    protected_header: Mapping[int | str, object]
    payload: bytes
    signature: bytes
    kid: bytes

    def to_be_signed(self) -> bytes:
        """The RFC 9052 Sig_structure the signature covers (no external AAD)."""
        return sig_structure(self.protected, self.payload)


def key_id(public_key_raw: bytes) -> bytes:
    """The `kid` of an Ed25519 public key: the first 8 bytes of SHA-256 of its raw 32 bytes."""
    if len(public_key_raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key is 32 raw bytes, not {len(public_key_raw)}")
    return hashlib.sha256(public_key_raw).digest()[:KID_BYTES]


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


def _header_map(value: object, which: str) -> dict[int | str, object]:
    if not isinstance(value, dict):
        raise CoseError(CoseProblem.COSE, f"{which} header is {describe_cbor(value)}, not a map")
    for label in value:
        # RFC 9052: a header label is an integer or a text string.
        if not isinstance(label, int | str) or isinstance(label, bool):
            raise CoseError(CoseProblem.COSE, f"{which} header has a label that is {describe_cbor(label)}")
    return value


def _parse_cose(cose: bytes, item: object) -> CoseSign1:
    def bad(reason: str) -> CoseError:
        return CoseError(CoseProblem.COSE, reason)

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
        raise CoseError(CoseProblem.ALGORITHM, f"alg (1) is {where}; RB1 needs EdDSA (-8)")
    if type(alg) is not int or alg != ALG_EDDSA:
        shown = show_int(alg) if type(alg) is int else describe_cbor(alg)
        raise CoseError(CoseProblem.ALGORITHM, f"alg is {shown}, not EdDSA (-8)")

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
    return CoseSign1(cose, protected, MappingProxyType(header), payload, signature, kid)


def cose_open(cose: bytes) -> CoseSign1:
    """Parse a COSE_Sign1 as we sign it (EdDSA, kid in the protected header, nothing unprotected,
    deterministic encoding); raises `CoseError`. Checks no signature."""
    try:
        item = load_cbor(cose)
    except ValueError as err:
        raise CoseError(CoseProblem.CBOR, f"cbor: {err}") from err
    return _parse_cose(cose, item)
