"""The camera against real sources: PNG folders and MJPG videos written here by OpenCV and decoded by it,
folders and files that vanish and come back, and devices and RTSP servers that are not there."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from robot_agent.config import CameraSection
from robot_agent.vision.camera import Camera, CameraEnded, Frame
from tests.support.ports import free_port
from tests.support.tasks import eventually

LOGGER = "robot_agent.vision.camera"
SIZE = (96, 64)  # width, height
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}

Image = NDArray[np.uint8]


def section(tmp_path: Path, source: dict[str, Any], fps: float = 100.0) -> CameraSection:
    """A [camera] section as robot.toml gives it: through JSON in strict mode, paths relative to tmp_path."""
    raw = {"source": source, "width": SIZE[0], "height": SIZE[1], "fps": fps}
    return CameraSection.model_validate_json(json.dumps(raw), strict=True, context={"base_dir": tmp_path})


def picture(level: int) -> Image:
    """A frame told apart from the others by its grey level, with a bar so it is no flat colour."""
    image = np.full((SIZE[1], SIZE[0], 3), level, dtype=np.uint8)
    image[10:20, :, 2] = 255 - level
    return image


def write_folder(folder: Path, names: list[str], levels: list[int]) -> None:
    folder.mkdir(exist_ok=True)
    # Written in reverse so that creation order is not name order.
    for name, level in reversed(list(zip(names, levels, strict=True))):
        assert cv2.imwrite(str(folder / name), picture(level))


def write_video(path: Path, levels: list[int]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, SIZE)
    assert writer.isOpened()
    for level in levels:
        writer.write(picture(level))
    writer.release()


def level_of(frame: Frame) -> int:
    return round(float(frame.image[30:, :, 0].mean()))


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


async def collect(camera: Camera, until_seq: int) -> list[Frame]:
    frames: list[Frame] = []
    while not frames or frames[-1].seq < until_seq:
        frames.append(await camera.next_frame(timeout=5))
    return frames


# -- a folder of images ----------------------------------------------------------------------------------


async def test_folder_frames_come_in_name_order_paced_and_then_end(tmp_path: Path) -> None:
    names = [f"img_{i:03d}.png" for i in range(5)]
    levels = [20, 60, 100, 140, 180]
    write_folder(tmp_path / "images", names, levels)
    fps = 20.0
    config = section(tmp_path, {"type": "folder", "path": "images", "loop": False}, fps=fps)

    with Camera(config) as camera:
        frames = await collect(camera, until_seq=5)
        with pytest.raises(CameraEnded):
            await camera.next_frame(timeout=5)
        stats = camera.stats()

    # A frame the test was too slow for is dropped, but each one received is the image its seq says.
    for frame in frames:
        assert frame.source == f"folder:{tmp_path / 'images' / names[frame.seq - 1]}"
        assert level_of(frame) == levels[frame.seq - 1]
        assert frame.image.shape == (SIZE[1], SIZE[0], 3)
        assert frame.wall.tzinfo == datetime.UTC
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    assert all(a.mono_ns < b.mono_ns and a.wall <= b.wall for a, b in itertools.pairwise(frames))
    assert frames[-1].seq == 5  # the last frame is never replaced, so it is never lost
    assert frames[-1].mono_ns - frames[0].mono_ns >= 0.9 * (frames[-1].seq - frames[0].seq) * 1e9 / fps
    assert stats.ended
    assert not stats.connected
    assert stats.captured == 5
    assert stats.consumed + stats.dropped == 5
    assert stats.reconnects == 0
    assert stats.last_error is None


async def test_a_looping_folder_starts_again(tmp_path: Path) -> None:
    names = ["a.png", "b.png", "c.png"]
    levels = [30, 130, 230]
    write_folder(tmp_path / "images", names, levels)
    config = section(tmp_path, {"type": "folder", "path": "images", "loop": True})

    with Camera(config) as camera:
        frames = await collect(camera, until_seq=10)
        assert camera.stats().fps > 0

    for frame in frames:
        assert frame.source.endswith(names[(frame.seq - 1) % 3])
        assert level_of(frame) == levels[(frame.seq - 1) % 3]
    assert not camera.stats().ended


async def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_dropped(tmp_path: Path) -> None:
    names = [f"img_{i:03d}.png" for i in range(30)]
    write_folder(tmp_path / "images", names, [i * 8 for i in range(30)])

    config = section(tmp_path, {"type": "folder", "path": "images", "loop": False})
    with Camera(config) as camera:
        await eventually(lambda: camera.stats().ended, "played to the end")
        frame = camera.latest()
        assert frame is not None
        assert (frame.seq, frame.source) == (30, f"folder:{tmp_path / 'images' / names[-1]}")
        assert camera.latest() is None  # taken: no backlog behind it
        stats = camera.stats()
        assert (stats.captured, stats.consumed, stats.dropped) == (30, 1, 29)

    config = section(tmp_path, {"type": "folder", "path": "images", "loop": True})
    with Camera(config) as camera:
        await eventually(lambda: camera.stats().captured >= 50, "50 frames captured", within_s=10)
        captured_before = camera.stats().captured
        frame = camera.latest()
        assert frame is not None
        assert frame.seq >= captured_before
        stats = camera.stats()
        assert stats.captured - 1 <= stats.consumed + stats.dropped <= stats.captured
        assert stats.dropped >= captured_before - 1


async def test_an_image_that_cannot_be_decoded_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    write_folder(tmp_path / "images", ["a.png", "b.png", "y.png"], [40, 120, 200])
    corrupt = tmp_path / "images" / "x.png"
    corrupt.write_bytes(np.random.default_rng(7).bytes(4000))
    config = section(tmp_path, {"type": "folder", "path": "images", "loop": False})

    with Camera(config) as camera:
        await eventually(lambda: camera.stats().ended, "played to the end")
        last = camera.latest()
        stats = camera.stats()

    assert last is not None
    assert (last.seq, last.source, level_of(last)) == (3, f"folder:{tmp_path / 'images' / 'y.png'}", 200)
    assert (stats.captured, stats.skipped_images) == (3, 1)
    assert [r.getMessage() for r in warnings(caplog)] == [
        f"camera skipped image file={corrupt}: cannot decode"
    ]


async def test_a_folder_that_vanishes_is_waited_for_and_frames_flow_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    folder, away = tmp_path / "images", tmp_path / "moved"
    write_folder(folder, ["a.png", "b.png", "c.png"], [50, 150, 250])
    config = section(tmp_path, {"type": "folder", "path": "images", "loop": True})

    with Camera(config, **FAST) as camera:
        await eventually(lambda: camera.stats().captured >= 3, "first frames")
        folder.rename(away)
        await eventually(lambda: camera.stats().reconnects >= 3, "reopening tried three times")
        gone = camera.stats()
        assert not gone.connected
        assert gone.last_error == f"folder not found: {folder}"
        camera.latest()  # whatever came before the folder went

        away.rename(folder)
        frame = await camera.next_frame(timeout=5)
        assert frame.seq > gone.captured
        assert frame.source.startswith(f"folder:{folder}/")
        assert camera.stats().connected

    assert [r.getMessage() for r in warnings(caplog)] == [
        f"camera source=folder:{folder} unavailable: folder not found: {folder}; "
        "reopening it with backoff up to 0.05 s"
    ]
    assert any(r.getMessage().startswith(f"camera source=folder:{folder} back after") for r in caplog.records)


# -- a video file ----------------------------------------------------------------------------------------


async def test_a_video_file_is_decoded_at_its_size_and_ends(tmp_path: Path) -> None:
    levels = [10 + 20 * i for i in range(12)]
    write_video(tmp_path / "ride.avi", levels)
    config = section(tmp_path, {"type": "file", "path": "ride.avi"})

    with Camera(config) as camera:
        frames = await collect(camera, until_seq=12)
        with pytest.raises(CameraEnded):
            await camera.next_frame(timeout=5)
        assert camera.stats().ended

    for frame in frames:
        assert frame.source == f"file:{tmp_path / 'ride.avi'}"
        assert frame.image.shape == (SIZE[1], SIZE[0], 3)
        assert abs(level_of(frame) - levels[frame.seq - 1]) <= 3  # MJPG is lossy


async def test_a_looping_video_file_plays_again(tmp_path: Path) -> None:
    levels = [10 + 20 * i for i in range(6)]
    write_video(tmp_path / "ride.avi", levels)
    config = section(tmp_path, {"type": "file", "path": "ride.avi", "loop": True})

    with Camera(config) as camera:
        frames = await collect(camera, until_seq=15)

    for frame in frames:
        assert abs(level_of(frame) - levels[(frame.seq - 1) % 6]) <= 3
    assert camera.stats().reconnects == 0


async def test_a_video_file_missing_at_start_is_retried_until_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    video = tmp_path / "ride.avi"
    write_video(video, [100] * 4)
    config = section(tmp_path, {"type": "file", "path": "ride.avi"})  # the file must exist to validate
    video.unlink()

    with Camera(config, **FAST) as camera:
        await eventually(lambda: camera.stats().reconnects >= 3, "reopening tried three times")
        stats = camera.stats()
        assert (stats.captured, stats.connected, stats.last_error) == (0, False, f"file not found: {video}")

        write_video(video, [100] * 4)
        frame = await camera.next_frame(timeout=5)
        assert frame.seq == 1

    assert len(warnings(caplog)) == 1


# -- sources that are not there --------------------------------------------------------------------------


@pytest.fixture
def missing_device() -> str:
    """A V4L2 device path that nothing answers on."""
    path = "/dev/video99"
    assert not Path(path).exists()
    return path


async def test_a_device_that_does_not_exist_is_retried_and_stop_is_prompt(
    tmp_path: Path, missing_device: str
) -> None:
    config = section(tmp_path, {"type": "device", "device": missing_device})

    camera = Camera(config)  # the default backoff: 0.1 s doubling
    camera.start()
    try:
        # The third reopening is followed by a 0.8 s backoff, which stop() must cut short.
        await eventually(lambda: camera.stats().reconnects >= 3, "reopening tried three times")
        with pytest.raises(TimeoutError):
            await camera.next_frame(timeout=0.05)
    finally:
        started = time.monotonic()
        camera.stop()
        stopped_in = time.monotonic() - started
    camera.stop()

    assert stopped_in < 0.5
    stats = camera.stats()
    label = f"device:{missing_device}"
    assert (stats.source, stats.captured, stats.last_error) == (label, 0, f"cannot open {label}")
    with pytest.raises(CameraEnded):
        await camera.next_frame(timeout=1)


async def test_an_rtsp_camera_that_refuses_is_retried_and_its_credentials_never_show(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    port = free_port()
    config = section(
        tmp_path, {"type": "rtsp", "url": f"rtsp://guard:s3cr3t@127.0.0.1:{port}/live?token=t0k3n"}
    )

    with Camera(config, **FAST) as camera:
        await eventually(lambda: camera.stats().reconnects >= 2, "reopening tried twice")
        stats = camera.stats()

    label = f"rtsp://127.0.0.1:{port}/live"
    assert (stats.source, stats.captured, stats.last_error) == (label, 0, f"cannot open {label}")
    assert len(warnings(caplog)) == 1
    seen = caplog.text + str(stats) + "".join(capfd.readouterr())
    assert "s3cr3t" not in seen
    assert "t0k3n" not in seen


async def test_a_waiting_consumer_is_woken_when_the_camera_stops(tmp_path: Path, missing_device: str) -> None:
    config = section(tmp_path, {"type": "device", "device": missing_device})
    camera = Camera(config)
    camera.start()
    waiting = asyncio.create_task(camera.next_frame())
    await asyncio.sleep(0)  # lets it run until it waits
    assert not waiting.done()
    await asyncio.to_thread(camera.stop)
    with pytest.raises(CameraEnded):
        await asyncio.wait_for(waiting, timeout=5)
