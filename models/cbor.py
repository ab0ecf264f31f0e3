"""CBOR (RFC 8949) as the project reads and writes it: one item exactly, refused with a reason that names the
type and never shows the value; written by hand in the shortest form where speed matters.

Pure code, no I/O. Shared by the tickets' claims, the COSE envelope (`models.cose`) and the sync batches.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Final

import cbor2

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
