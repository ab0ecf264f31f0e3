"""RFC 9285 base45, strict: one text per byte string, and a reason naming the position of the first problem.

Each 2 bytes `n = b0 * 256 + b1` become three characters `c, d, e` with `n = c + 45*d + 45*45*e`; a last odd
byte becomes two. A loop over the groups in Python costs ~25 us per ticket each way, more than half the
signature. Here every group gets its own lane of one big integer, so that a handful of integer operations
(done in C) work on all the groups at once: ~4 us to encode, ~3 us to decode. Tables of all 65,536 groups do
no better and cost ~12 MB and a quarter of a second to build (paid by the first scan). Only valid text takes
the fast path; for anything else the character-by-character decoder finds and names the problem.
"""

from __future__ import annotations

from typing import Final

BASE45_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES: Final = {char: value for value, char in enumerate(BASE45_ALPHABET)}
# bytes.translate tables between characters and their values 0..44; 0xFF marks a byte outside the alphabet.
_TO_CHARS: Final = bytes.maketrans(bytes(range(45)), BASE45_ALPHABET.encode("ascii"))
_TO_VALUES: Final = bytes(_VALUES.get(chr(byte), 0xFF) for byte in range(256))
_NOT_A_VALUE: Final = 0xFF


def _div45(lanes: int, lane_mask: int) -> int:
    """`x // 45` in every 32-bit lane of `lanes`, for lane values below 2**16.

    x // 45 == x * 46604 >> 21 for every x < 2**16 (46604 = ceil(2**21 / 45); the encoder's test covers every
    2-byte value), and x * 46604 < 2**32 stays in its lane. The shift pulls the next lane's low bits into the
    top of each lane; `lane_mask` (0x7FF per lane: quotients are below 1457) cuts them off.
    """
    return ((lanes * 46604) >> 21) & lane_mask


def base45_encode(data: bytes) -> str:
    """RFC 9285 base45: each 2 bytes become 3 characters, a last odd byte 2 characters."""
    pairs, odd = divmod(len(data), 2)
    # Lane i (32 bits, big-endian) holds n = data[2i] * 256 + data[2i + 1].
    spread = bytearray(4 * pairs)
    spread[2::4] = data[0 : 2 * pairs : 2]
    spread[3::4] = data[1 : 2 * pairs : 2]
    n = int.from_bytes(spread, "big")
    ones = int.from_bytes(b"\x00\x00\x00\x01" * pairs, "big")  # 1 in every lane
    low_11_bits = ones * 0x7FF
    q = _div45(n, low_11_bits)
    e = _div45(q, low_11_bits)
    # Each lane becomes the bytes 0xFF, c, d, e with c = n % 45, d = q % 45: translate turns c, d and e into
    # characters and deletes the 0xFF filler in the same C call.
    lanes = ((n - 45 * q) << 16) + ((q - 45 * e) << 8) + e + ones * 0xFF000000
    text = lanes.to_bytes(4 * pairs, "big").translate(_TO_CHARS, bytes((_NOT_A_VALUE,)))
    if odd:
        d, c = divmod(data[-1], 45)
        text += bytes((c, d)).translate(_TO_CHARS)
    return text.decode("ascii")


def base45_decode(text: str) -> bytes:
    """Strict RFC 9285 decoding; raises `ValueError` naming the position of the first problem."""
    groups, rest = divmod(len(text), 3)
    values = text.encode("ascii", "replace").translate(_TO_VALUES)  # "?" is not in the alphabet either
    if rest == 1 or _NOT_A_VALUE in values:
        return _decode_explaining(text)
    # Lane i (24 bits, big-endian) holds the values c, d, e of group i as its three bytes.
    lanes = int.from_bytes(values[: 3 * groups], "big")
    low_bytes = int.from_bytes(b"\x00\x00\xff" * groups, "big")
    n = ((lanes >> 16) & low_bytes) + 45 * ((lanes >> 8) & low_bytes) + 2025 * (lanes & low_bytes)
    if (n >> 16) & low_bytes:  # some group is above 65535 (the largest, "::", is 91124: still in its lane)
        return _decode_explaining(text)
    packed = n.to_bytes(3 * groups, "big")  # 0, b0, b1 for every group
    out = bytearray(2 * groups + rest // 2)
    out[0 : 2 * groups : 2] = packed[1::3]
    out[1 : 2 * groups : 2] = packed[2::3]
    if rest:
        last = values[-2] + 45 * values[-1]
        if last > 0xFF:
            return _decode_explaining(text)
        out[-1] = last
    return bytes(out)


def _decode_explaining(text: str) -> bytes:
    """The character-by-character decoder: slow, but it says what is wrong and where."""
    values: list[int] = []
    for position, char in enumerate(text):
        value = _VALUES.get(char)
        if value is None:
            raise ValueError(f"invalid character U+{ord(char):04X} at position {position}")
        values.append(value)
    if len(values) % 3 == 1:
        raise ValueError(f"length {len(values)} leaves one dangling character")
    out = bytearray()
    whole = len(values) - len(values) % 3
    for i in range(0, whole, 3):
        number = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        # Rejecting overlong groups keeps the encoding one-to-one: one byte string, one text.
        if number > 0xFFFF:
            raise ValueError(f"group at position {i} is {number}, above 65535")
        out += number.to_bytes(2, "big")
    if whole < len(values):
        number = values[whole] + values[whole + 1] * 45
        if number > 0xFF:
            raise ValueError(f"final pair at position {whole} is {number}, above 255")
        out.append(number)
    return bytes(out)
