"""QrReader on real RB1 ticket codes through OpenCV: clean frames and PNG files read exactly, garbage gives
nothing, and a phone screen photographed in a moving train is read at least 95% of the time (the wallet's
longer live codes at least 90%).

The degraded frames are defined in `tests/support/qr_images.py` (`LEVELS`); the benchmark `bench/bench_qr.py`
uses the same definitions. Their shares are printed whatever pytest's capture setting.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from models.tickets import base45_encode, encode_ticket, live_code
from robot_agent.vision.qr import QrReader
from tests.support.qr_images import LEVELS, photograph, render_qr, save_png
from tests.unit.ticket_samples import KEY, claims

SEED = 20261130
TOKENS = 240
TRAIN_FRAMES = 720
FRAMES_PER_KIND = 25
REQUIRED_SHARE = 0.95
# A live code from the wallet (a holder-bound ticket, `RB1H:`) is ~440 characters against the ticket's ~285:
# version 11 at error correction L where the ticket's own code is version 10 at M. It reads less often at
# 640x480: here 91.7% of 240 frames at L and 84.6% at M (seed 5, 720 frames: 92.5% and 83.9%); at 1280x720,
# robot.toml's camera, 97.3% at L (300 frames). This floor holds the wallet to L
# (cloud_sync/desks/wallet.py); the 95% target is the ticket's own code's.
LIVE_REQUIRED_SHARE = 0.90
LIVE_FRAMES = 240
WALLET = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
LIVE_AT = dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def ticket_tokens(count: int, seed: int) -> list[str]:
    """Distinct real tokens: one evening's tickets on train 742, ids and seats drawn from `seed`."""
    rng = np.random.default_rng(seed)
    return [
        encode_ticket(
            claims(
                ticket_id=uuid.UUID(bytes=rng.bytes(16), version=4),
                user_id=uuid.UUID(bytes=rng.bytes(16), version=4),
                wagon_number=int(rng.integers(1, 21)),
                place_number=int(rng.integers(1, 61)),
                code="".join(rng.choice(list(CODE_ALPHABET), 6)),
            ),
            KEY,
        )
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def reader() -> QrReader:
    return QrReader()


@pytest.fixture(scope="module")
def tokens() -> list[str]:
    return ticket_tokens(TOKENS, SEED)


@pytest.fixture(scope="module")
def live_codes() -> list[str]:
    """Live codes as the wallet draws them, of tickets bound to `WALLET` (the tokens' own claims)."""
    rng = np.random.default_rng(SEED + 1)
    return [
        live_code(
            encode_ticket(
                claims(
                    ticket_id=uuid.UUID(bytes=rng.bytes(16), version=4),
                    code="".join(rng.choice(list(CODE_ALPHABET), 6)),
                    holder_key=WALLET.public_key().public_bytes_raw(),
                ),
                KEY,
            ),
            WALLET,
            LIVE_AT,
        )
        for _ in range(TOKENS // 4)
    ]


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_clean_codes_read_exactly(reader: QrReader, tokens: list[str], size: tuple[int, int]) -> None:
    for token in tokens[:5]:
        assert reader.decode(render_qr(token, size=size)) == [token]


def test_png_files_read_back_through_opencv(reader: QrReader, tokens: list[str], tmp_path: Path) -> None:
    for n, token in enumerate(tokens[:5]):
        vector, small, large = (tmp_path / f"{name}_{n}.png" for name in ("vector", "640x480", "1280x720"))
        save_png(token, vector)
        assert cv2.imwrite(str(small), render_qr(token))
        assert cv2.imwrite(str(large), render_qr(token, size=(1280, 720)))
        for path in (vector, small, large):
            image = cv2.imread(str(path))
            assert image is not None
            assert reader.decode(image) == [token]
    # The vector is the cloud's qr.png: 6 px per module, a 4-module quiet zone, black on white.
    image = cv2.imread(str(tmp_path / "vector_0.png"), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    assert image.shape[0] == (segno.make_qr(tokens[0], error="m").symbol_size(scale=6, border=4)[0])


def test_any_text_is_returned_as_it_is(reader: QrReader) -> None:
    # The live form: a longer RB1H: text (a version-12 code). The reader does not look inside.
    live = "RB1H:" + base45_encode(np.random.default_rng(SEED).bytes(256))
    lower = "a lower-case text, in byte mode: ü"
    for text in (live, lower):
        assert reader.decode(render_qr(text)) == [text]
        assert reader.decode(render_qr(text, size=(1280, 720))) == [text]


def test_two_codes_in_one_frame_are_both_returned(reader: QrReader, tokens: list[str]) -> None:
    first, second = tokens[0], tokens[1]
    frame = np.hstack([render_qr(first, size=(640, 720)), render_qr(second, size=(640, 720))])
    assert sorted(reader.decode(frame)) == sorted([first, second])


def test_a_code_seen_twice_is_returned_once(reader: QrReader, tokens: list[str]) -> None:
    frame = np.hstack([render_qr(tokens[0], size=(640, 720))] * 2)
    assert reader.decode(frame) == [tokens[0]]


def test_gray_and_bgra_frames_are_read(reader: QrReader, tokens: list[str]) -> None:
    frame = render_qr(tokens[0])
    assert reader.decode(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)) == [tokens[0]]
    assert reader.decode(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)) == [tokens[0]]
    assert reader.decode(frame[:, :, :1]) == [tokens[0]]


def test_a_code_opencv_cannot_give_as_utf8_does_not_raise(reader: QrReader) -> None:
    # segno puts Cyrillic in kanji mode; OpenCV returns its Shift JIS bytes, and its str API raises on them.
    assert segno.make_qr("Привет").mode == "kanji"
    assert len(reader.decode(render_qr("Привет"))) == 1


def _garbage() -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    return {
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "black": np.zeros((480, 640, 3), np.uint8),
        "white gray": np.full((480, 640), 255, np.uint8),
        "1x1": np.zeros((1, 1, 3), np.uint8),
        "1x1 gray": np.zeros((1, 1), np.uint8),
        "float": rng.random((480, 640, 3), dtype=np.float32),
        "float64 gray": rng.random((480, 640)),
        "uint16": np.zeros((480, 640, 3), np.uint16),
        "bool": np.zeros((480, 640), bool),
        "empty": np.zeros((0, 0, 3), np.uint8),
        "empty 1-d": np.array([], np.uint8),
        "no columns": np.zeros((480, 0, 3), np.uint8),
        "2 channels": np.zeros((480, 640, 2), np.uint8),
        "5 channels": np.zeros((480, 640, 5), np.uint8),
        "4-d": np.zeros((2, 480, 640, 3), np.uint8),
        "huge": np.zeros((4000, 6000), np.uint8),
        "a strided view of noise": rng.integers(0, 256, (960, 1280, 3), dtype=np.uint8)[::2, ::-2],
        "not an array": [[0, 255], [255, 0]],
        "none": None,
    }


@pytest.mark.parametrize(("name", "image"), list(_garbage().items()), ids=list(_garbage()))
def test_garbage_gives_no_codes(reader: QrReader, name: str, image: Any) -> None:
    assert reader.decode(image) == []


@dataclass(frozen=True)
class Reading:
    """What became of one degraded frame."""

    level: str
    frame: int
    read: bool  # QrReader returned exactly the token
    wrong: bool  # QrReader returned some other text
    classic_read: bool  # cv2.QRCodeDetector returned exactly the token
    shot: str


_READER: list[tuple[QrReader, cv2.QRCodeDetector]] = []


def _start_worker() -> None:
    # One OpenCV thread per worker process: the pool already keeps every core busy.
    cv2.setNumThreads(1)


def _photograph_and_read(job: tuple[str, list[tuple[str, int, int]]]) -> list[Reading]:
    """One token's frames, each photographed at its level with its own seed and read both ways."""
    if not _READER:
        _READER.append((QrReader(), cv2.QRCodeDetector()))
    reader, classic = _READER[0]
    token, frames = job
    readings = []
    for level, number, frame in frames:
        # "live": the wallet's live codes, photographed as in the "train" level.
        photo = photograph(
            token, np.random.default_rng([SEED, number, frame]), LEVELS[_CONDITIONS.get(level, level)]
        )
        texts = reader.decode(photo.image)
        readings.append(
            Reading(
                level,
                frame,
                texts == [token],
                bool(texts) and texts != [token],
                _classic(classic, photo.image) == [token],
                f"{level} frame {frame}: {photo.shot}",
            )
        )
    return readings


_CONDITIONS = {"live": "train"}


def _plan(tokens: list[str], live_codes: list[str]) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """Each code's frames: `TRAIN_FRAMES` spread over all tokens, `FRAMES_PER_KIND` of each other level,
    `LIVE_FRAMES` spread over the live codes."""
    jobs: list[tuple[str, list[tuple[str, int, int]]]] = [(token, []) for token in tokens]
    live_jobs: list[tuple[str, list[tuple[str, int, int]]]] = [(code, []) for code in live_codes]
    for frame in range(LIVE_FRAMES):
        live_jobs[frame % len(live_codes)][1].append(("live", len(LEVELS), frame))
    for frame in range(TRAIN_FRAMES):
        jobs[frame % len(tokens)][1].append(("train", 0, frame))
    others = [name for name in LEVELS if name != "train"]
    for number, name in enumerate(others, start=1):
        for frame in range(FRAMES_PER_KIND):
            jobs[frame][1].append((name, number, frame))
    return jobs + live_jobs


def _share(hits: int, total: int) -> str:
    """`hits` of `total` with the Wilson 95% interval around the share."""
    p, z = hits / total, 1.96
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return f"{hits:>3}/{total:<3} = {p:6.1%} (95% CI {centre - half:.1%}-{centre + half:.1%})"


def test_phone_screens_photographed_in_a_train(
    tokens: list[str], live_codes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every level's frames through QrReader, at least 95% read exactly; the classic detector to compare.

    A token is shown in several frames (segno takes ~50 ms to draw one code); every frame draws its own pose
    and degradations. The frames are spread over a process per core.
    """
    workers = max(1, min(4, len(os.sched_getaffinity(0))))
    started = time.monotonic()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker) as pool:
        jobs = _plan(tokens, live_codes)
        readings = [r for job in pool.map(_photograph_and_read, jobs, chunksize=4) for r in job]
    elapsed = time.monotonic() - started
    levels = [*LEVELS, "live"]
    readings.sort(key=lambda r: (levels.index(r.level), r.frame))
    with capsys.disabled():
        print(
            "\nQR codes read from a phone screen photographed in a train, 640x480 (live: the wallet's"
            " live codes at the train level)"
            f" ({elapsed:.0f} s, {workers} processes):"
        )
        for level in levels:
            mine = [r for r in readings if r.level == level]
            print(
                f"  {level:<12} QrReader {_share(sum(r.read for r in mine), len(mine))}"
                f"   cv2.QRCodeDetector {_share(sum(r.classic_read for r in mine), len(mine))}"
            )
        print("  not read by QrReader:")
        print("".join(f"    {r.shot}\n" for r in readings if not r.read), end="")
    assert not [r.shot for r in readings if r.wrong], "a frame was read as some other text"
    train = [r.read for r in readings if r.level == "train"]
    assert sum(train) / len(train) >= REQUIRED_SHARE
    tickets = [r.read for r in readings if r.level != "live"]
    assert sum(tickets) / len(tickets) >= REQUIRED_SHARE
    live = [r.read for r in readings if r.level == "live"]
    assert sum(live) / len(live) >= LIVE_REQUIRED_SHARE


def _classic(detector: cv2.QRCodeDetector, image: NDArray[np.uint8]) -> list[str]:
    try:
        found, texts, _points, _straight = detector.detectAndDecodeMulti(image)
    except (cv2.error, UnicodeDecodeError):
        return []
    return [text for text in texts if text] if found else []
