"""dlib's serialization primitives (dlib/serialize.h, dlib/float_details.h, dlib/cuda/tensor.h), read in
pure Python from bytes, and the error every failure to read or convert a dlib model raises.

How dlib writes them:
- integer: a control byte, then the magnitude in little-endian bytes. The control byte's low 4 bits are the
  number of bytes (1 to 8), its high bit the sign; 0 itself is written as one byte of magnitude.
- string: its length (an integer), then that many bytes, no terminator.
- bool: the byte `1` or `0` (ASCII).
- real (float or double): mantissa (integer), then exponent (integer); the value is mantissa * 2**exponent,
  except exponents 32000, 32001 and 32002, which stand for +inf, -inf and NaN.
- tensor: version 2 (integer), num_samples, k, nr, nc (integers), then num_samples*k*nr*nc float32 in
  little-endian order (sample, channel, row, column).
- alias tensor (a view's shape, no data): version 1, then num_samples, k, nr, nc.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from robot_agent.errors import RobotAgentError

Floats = NDArray[np.float32]

_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibModelError(RobotAgentError):
    """A dlib model that cannot be read or converted: truncated, corrupt, or not the network expected."""


class Reader:
    """dlib's primitives read one after another from `data`; every failure names what and where."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, count: int, what: str) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise DlibModelError(
                f"truncated: {what} needs {count} bytes at byte {self.offset}, "
                f"the data ends at byte {len(self.data)}"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def integer(self, what: str) -> int:
        """A signed or unsigned integer (dlib writes both alike)."""
        start = self.offset
        (control,) = self._take(1, what)
        size = control & 0x0F
        if not 1 <= size <= 8:
            raise DlibModelError(f"{what} at byte {start}: {control:#04x} does not start an integer")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def count(self, what: str) -> int:
        """A non-negative integer (a size, a version)."""
        start = self.offset
        value = self.integer(what)
        if value < 0:
            raise DlibModelError(f"{what} at byte {start} is {value}, expected a count")
        return value

    def string(self, what: str) -> str:
        length = self.count(f"{what}'s length")
        return self._take(length, what).decode("latin-1")

    def boolean(self, what: str) -> bool:
        start = self.offset
        (byte,) = self._take(1, what)
        if byte not in b"01":
            raise DlibModelError(f"{what} at byte {start}: {byte:#04x} is not a bool ('0' or '1')")
        return byte == ord("1")

    def real(self, what: str) -> float:
        mantissa = self.integer(f"{what}'s mantissa")
        exponent = self.integer(f"{what}'s exponent")
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError as err:
            raise DlibModelError(f"{what}: {mantissa} * 2**{exponent} is out of range") from err

    def _shape(self, what: str, version: int) -> tuple[int, int, int, int]:
        start = self.offset
        found = self.integer(f"{what}'s version")
        if found != version:
            raise DlibModelError(f"{what} at byte {start}: version {found}, expected {version}")
        return (
            self.count(f"{what}'s num_samples"),
            self.count(f"{what}'s k"),
            self.count(f"{what}'s nr"),
            self.count(f"{what}'s nc"),
        )

    def tensor(self, what: str) -> Floats:
        """A tensor's data, shaped (num_samples, k, nr, nc)."""
        shape = self._shape(what, 2)
        size = math.prod(shape)
        raw = self._take(4 * size, f"{what} ({size} floats)")
        try:
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        except ValueError as err:  # an empty tensor whose other sides are absurd: numpy refuses the shape
            raise DlibModelError(f"{what}: shape {shape} is not a tensor numpy can hold") from err

    def alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        """An alias tensor: the shape of a view into a layer's parameters."""
        return self._shape(what, 1)

    def version(self, what: str, allowed: range) -> int:
        start = self.offset
        found = self.integer(f"{what}'s version")
        if found not in allowed:
            raise DlibModelError(
                f"{what} at byte {start}: version {found}, expected {allowed.start} to {allowed.stop - 1}"
            )
        return found

    def at_end(self) -> None:
        if self.offset != len(self.data):
            raise DlibModelError(
                f"{len(self.data) - self.offset} bytes follow the network (it ends at byte {self.offset})"
            )
