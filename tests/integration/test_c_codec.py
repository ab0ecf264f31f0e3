"""The MCU's C frame codec (firmware_bridge/c/): the shared vectors, no libc, and the Python decoder's twin.

Each test builds what it needs with gcc in a temporary folder, with the warnings the firmware build uses
turned into errors; a missing gcc fails the test (nothing is skipped).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.framing import (
    MAX_ENCODED_BYTES,
    MAX_PAYLOAD_BYTES,
    Frame,
    FrameDecoder,
    Rejected,
    cobs_encode,
    encode_frame,
)

ROOT: Final = Path(__file__).resolve().parents[2]
C_DIR: Final = ROOT / "firmware_bridge" / "c"
VECTORS_PATH: Final = ROOT / "firmware_bridge" / "vectors.json"
# The sections test_vectors.c checks; bad_payloads belongs to the message layer, which is not in C.
SECTIONS: Final = ("crc16", "cobs", "frames", "bad_frames", "streams")
CFLAGS: Final = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow", "-O2")


def tool(name: str) -> str:
    """gcc, or nm (binutils, which every gcc install brings along); a missing one fails the test."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make setup` (it installs gcc)", pytrace=False)
    return path


def run(*args: str | Path) -> str:
    """Runs a command to completion; its stdout, or a failure that shows everything it printed."""
    command = [str(arg) for arg in args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (
        f"{' '.join(command)} exited with {done.returncode}\n{done.stdout}{done.stderr}".rstrip()
    )
    return done.stdout


def test_c_codec_passes_every_vector(tmp_path: Path) -> None:
    gcc = tool("gcc")
    header = tmp_path / "vectors.h"
    run(sys.executable, C_DIR / "gen_vectors_header.py", "--vectors", VECTORS_PATH, "-o", header)
    binary = tmp_path / "test_vectors"
    sources = (C_DIR / "rb_frame.c", C_DIR / "test_vectors.c")
    run(gcc, *CFLAGS, "-I", tmp_path, "-I", C_DIR, *sources, "-o", binary)

    output = run(binary)

    vectors = json.loads(VECTORS_PATH.read_text())
    expected = sum(len(vectors[section]) for section in SECTIONS)
    assert f"rb_frame: {expected} vectors passed" in output.splitlines(), output
    assert "rb_frame: edge cases passed" in output.splitlines(), output


def test_rb_frame_needs_no_libc(tmp_path: Path) -> None:
    """Compiles freestanding, and the object refers to no symbol (gcc may turn copy loops into memcpy)."""
    gcc, nm = tool("gcc"), tool("nm")
    obj = tmp_path / "rb_frame.o"
    run(gcc, *CFLAGS, "-ffreestanding", "-nostdlib", "-c", C_DIR / "rb_frame.c", "-o", obj)
    assert run(nm, "--undefined-only", obj).split() == []


class StreamDecoder:
    """decode_stream.c, compiled once: decodes a batch of streams in one process."""

    def __init__(self, directory: Path) -> None:
        self.binary = directory / "decode_stream"
        self.batch = directory / "streams.bin"
        sources = (C_DIR / "rb_frame.c", C_DIR / "decode_stream.c")
        run(tool("gcc"), *CFLAGS, "-I", C_DIR, *sources, "-o", self.binary)

    def decode(self, streams: Sequence[bytes]) -> list[list[str]]:
        self.batch.write_bytes(b"".join(len(stream).to_bytes(4, "little") + stream for stream in streams))
        results: list[list[str]] = [[]]
        for line in run(self.binary, self.batch).splitlines():
            if line == "E":
                results.append([])
            else:
                results[-1].append(line)
        assert results.pop() == [], "output after the last stream's end"
        return results


@pytest.fixture(scope="module")
def stream_decoder(tmp_path_factory: pytest.TempPathFactory) -> StreamDecoder:
    return StreamDecoder(tmp_path_factory.mktemp("decode_stream"))


def python_results(stream: bytes) -> list[str]:
    """FrameDecoder's results in decode_stream.c's notation."""
    return [
        f"R {result.reject.value}"
        if isinstance(result, Rejected)
        else f"F {result.seq} {result.ack} {result.type} {result.payload.hex()}"
        for result in FrameDecoder().feed(stream)
    ]


frames = st.builds(
    Frame,
    seq=st.integers(0, 255),
    ack=st.integers(0, 255),
    type=st.integers(0, 255),
    payload=st.binary(max_size=MAX_PAYLOAD_BYTES),
)
wires = frames.map(encode_frame)


@st.composite
def cut_frames(draw: st.DrawFn) -> bytes:
    """A frame's start (the rest merges with what follows) or its end (merging with what went before)."""
    wire = draw(wires)
    at = draw(st.integers(0, len(wire)))
    return wire[:at] if draw(st.booleans()) else wire[at:]


@st.composite
def damaged_frames(draw: st.DrawFn) -> bytes:
    """A frame with one byte changed; the change may make it a delimiter and split the frame."""
    wire = bytearray(draw(wires))
    at = draw(st.integers(0, len(wire) - 1))
    wire[at] ^= draw(st.integers(1, 255))
    return bytes(wire)


# Bytes between delimiters around the 65-byte limit, and COBS of bodies of any size up to just too long:
# what reaches too_short, bad_crc and both sides of too_long, which random bytes rarely do.
runs_near_the_limit = st.integers(MAX_ENCODED_BYTES - 3, MAX_ENCODED_BYTES + 3).flatmap(
    lambda n: st.binary(min_size=n, max_size=n).map(lambda run: run.replace(b"\x00", b"\xff"))
)
coded_bodies = st.binary(max_size=MAX_ENCODED_BYTES + 1).map(lambda body: b"\0" + cobs_encode(body) + b"\0")
stream_pieces = st.one_of(
    wires,
    cut_frames(),
    damaged_frames(),
    st.binary(max_size=80),
    st.lists(st.sampled_from((0x00, 0x01, 0x02, 0x03, 0xFE, 0xFF)), max_size=30).map(bytes),
    runs_near_the_limit,
    coded_bodies,
)
streams = st.lists(stream_pieces, max_size=10).map(b"".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(streams, min_size=1, max_size=8))
def test_c_decoder_reports_what_the_python_decoder_reports(
    stream_decoder: StreamDecoder, batch: list[bytes]
) -> None:
    """Byte at a time in C, in one chunk in Python (split at delimiters): the same frames and rejects."""
    c_results = stream_decoder.decode(batch)
    assert len(c_results) == len(batch)
    for stream, c_result in zip(batch, c_results, strict=True):
        assert c_result == python_results(stream), f"stream {stream.hex()}"
