"""MCU frames: the test vectors, round trips, and a decoder that no byte stream can crash or fool."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.framing import (
    MAX_ENCODED_BYTES,
    MAX_PAYLOAD_BYTES,
    CobsError,
    Frame,
    FrameDecoder,
    Rejected,
    cobs_decode,
    cobs_encode,
    crc16,
    encode_frame,
)
from firmware_bridge.vectors import build_vectors, load_vectors, render

VECTORS = load_vectors()

frames = st.builds(
    Frame,
    seq=st.integers(0, 255),
    ack=st.integers(0, 255),
    type=st.integers(0, 255),
    payload=st.binary(max_size=MAX_PAYLOAD_BYTES),
)


def test_the_vectors_file_is_what_the_cases_make() -> None:
    assert render(build_vectors()) == render(VECTORS), "run `python -m firmware_bridge.vectors --write`"


@pytest.mark.parametrize("vector", VECTORS["crc16"], ids=lambda v: v["data_hex"][:16] or "empty")
def test_crc16_vectors(vector: dict[str, str | int]) -> None:
    assert crc16(bytes.fromhex(str(vector["data_hex"]))) == vector["crc"]


def test_crc16_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1  # the catalogue's check value for CRC-16/CCITT-FALSE


@pytest.mark.parametrize("vector", VECTORS["cobs"], ids=lambda v: v["raw_hex"][:16] or "empty")
def test_cobs_vectors(vector: dict[str, str]) -> None:
    raw, encoded = bytes.fromhex(vector["raw_hex"]), bytes.fromhex(vector["encoded_hex"])
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vectors(vector: dict[str, object]) -> None:
    frame = Frame(
        int(str(vector["seq"])),
        int(str(vector["ack"])),
        int(str(vector["type"])),
        bytes.fromhex(str(vector["payload_hex"])),
    )
    wire = bytes.fromhex(str(vector["wire_hex"]))
    assert encode_frame(frame) == wire
    assert FrameDecoder().feed(wire) == [frame]


@pytest.mark.parametrize("vector", VECTORS["bad_frames"], ids=lambda v: v["name"])
def test_bad_frame_vectors(vector: dict[str, str]) -> None:
    [result] = FrameDecoder().feed(bytes.fromhex(vector["wire_hex"]))
    assert isinstance(result, Rejected)
    assert result.reject.value == vector["reject"]


@pytest.mark.parametrize("vector", VECTORS["streams"], ids=lambda v: v["name"])
def test_stream_vectors(vector: dict[str, object]) -> None:
    results = FrameDecoder().feed(bytes.fromhex(str(vector["wire_hex"])))
    described = [
        {"reject": r.reject.value}
        if isinstance(r, Rejected)
        else {"frame": {"seq": r.seq, "ack": r.ack, "type": r.type, "payload_hex": r.payload.hex()}}
        for r in results
    ]
    assert described == vector["results"]


@given(st.binary(max_size=600))
def test_cobs_round_trips_without_zero_bytes(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


@given(st.binary(max_size=300))
def test_cobs_decode_takes_any_bytes_or_says_why(data: bytes) -> None:
    try:
        decoded = cobs_decode(data)
    except CobsError as err:
        reason = str(err)
    else:
        assert 0 not in data
        assert len(decoded) <= len(data)
        return
    # A zero byte is refused where the decoder meets it; a code byte may run past the end before that.
    assert ("zero byte" in reason and 0 in data) or "past the end" in reason


@given(st.lists(frames, max_size=8), st.integers(1, 70))
def test_frames_round_trip_in_any_chunking(sent: list[Frame], chunk: int) -> None:
    wire = b"".join(encode_frame(f) for f in sent)
    decoder = FrameDecoder()
    received: list[Frame | Rejected] = []
    for start in range(0, len(wire), chunk):
        received += decoder.feed(wire[start : start + chunk])
    assert received == sent
    assert decoder.pending == 0


@settings(max_examples=300)
@given(st.binary(max_size=2_000))
def test_random_bytes_never_crash_and_never_pass_a_bad_crc(noise: bytes) -> None:
    decoder = FrameDecoder()
    for result in decoder.feed(noise):
        if isinstance(result, Frame):
            # Whatever random bytes happen to pass is a frame with a correct CRC: re-encoding it round trips.
            assert FrameDecoder().feed(encode_frame(result)) == [result]
    assert decoder.pending <= MAX_ENCODED_BYTES + len(noise)


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=200), frames)
def test_the_decoder_resynchronises_within_one_frame(garbage: bytes, frame: Frame) -> None:
    """Garbage not ended by a delimiter would merge with what follows: the frame's leading 0x00 cuts it."""
    results = FrameDecoder().feed(garbage + encode_frame(frame))
    assert results[-1] == frame
    assert len(results) - 1 <= garbage.count(0) + 1


def test_noise_on_the_line_never_delivers_a_changed_frame() -> None:
    """1% flipped and 0.5% dropped bytes over 5,000 frames: every frame that comes out is one that went in."""
    rng = random.Random(7)
    sent = [
        Frame(n % 255 + 1, n % 7, rng.randrange(256), rng.randbytes(rng.randrange(MAX_PAYLOAD_BYTES + 1)))
        for n in range(5_000)
    ]
    wire = bytearray()
    for byte in b"".join(encode_frame(f) for f in sent):
        if rng.random() < 0.005:
            continue
        wire.append(byte ^ (1 << rng.randrange(8)) if rng.random() < 0.01 else byte)
    results = FrameDecoder().feed(bytes(wire))
    taken = [r for r in results if isinstance(r, Frame)]
    assert set(taken) <= set(sent)
    # Most frames survive (a 40-byte frame meets ~0.6 damaged bytes), and every damaged one is reported.
    assert len(taken) > 2_500
    assert len([r for r in results if isinstance(r, Rejected)]) > 500


def test_frame_fields_are_bytes() -> None:
    with pytest.raises(ValueError, match="seq 256"):
        encode_frame(Frame(256, 0, 1))
    with pytest.raises(ValueError, match="payload of 60 bytes"):
        encode_frame(Frame(1, 0, 1, bytes(60)))
