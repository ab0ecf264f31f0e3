"""The noise proxy between two real ptys: a clean wire is exact, a noisy one does what its counters say,
a throttled one is slow, a vanished device ends it, and the CLI hands out a usable pty."""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.noise_proxy import DirectionStats, Noise, NoiseProxy

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


class Device:
    """The MCU simulator's end: a raw pty whose master the test drives and whose slave path it hands out."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave: int | None = slave
        os.set_blocking(self.master, False)
        self.closed = False

    def release_slave(self) -> None:
        """Once the proxy holds the path open, our slave fd would only be a second, silent reader."""
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def close(self) -> None:
        self.release_slave()
        if not self.closed:
            os.close(self.master)
            self.closed = True


@pytest.fixture
def device() -> Iterator[Device]:
    dev = Device()
    yield dev
    dev.close()


@pytest.fixture
def start_proxy(device: Device) -> Iterator[Callable[..., tuple[NoiseProxy, int]]]:
    """`start_proxy(Noise(...), seed)`: a running proxy and the host's fd on its pty, both closed after."""
    opened: list[tuple[NoiseProxy, int]] = []

    def start(noise: Noise, seed: int = 0) -> tuple[NoiseProxy, int]:
        proxy = NoiseProxy(device.path, noise, seed=seed)
        proxy.start()
        device.release_slave()
        host = os.open(proxy.host_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        opened.append((proxy, host))
        return proxy, host

    yield start
    for proxy, host in opened:
        os.close(host)
        proxy.stop()


def pump(
    sends: dict[int, bytes], reads: list[int], done: Callable[[dict[int, bytes]], bool], what: str
) -> dict[int, bytes]:
    """Write every payload and read every fd at once, until `done(received)` or the deadline.

    Both at once because a pty buffers only a few KiB: a test that wrote everything before reading would
    block on its own write, with the proxy waiting for the test to read."""
    pending = {fd: memoryview(data) for fd, data in sends.items()}
    received = {fd: bytearray() for fd in reads}
    deadline = time.monotonic() + TIMEOUT
    while not done({fd: bytes(data) for fd, data in received.items()}):
        left = deadline - time.monotonic()
        if left <= 0:
            got = {fd: len(data) for fd, data in received.items()}
            unsent = {fd: len(view) for fd, view in pending.items()}
            pytest.fail(f"{what}: gave up after {TIMEOUT} s; bytes received per fd {got}, unsent {unsent}")
        writable = [fd for fd, view in pending.items() if view]
        ready_r, ready_w, _ = select.select(reads, writable, [], min(left, 0.1))
        for fd in ready_w:
            pending[fd] = pending[fd][os.write(fd, pending[fd]) :]
        for fd in ready_r:
            received[fd] += os.read(fd, 65536)
    return {fd: bytes(data) for fd, data in received.items()}


def lexicode(distance: int) -> list[int]:
    """Byte values at least `distance` bits apart from each other (16 of them for 4: extended Hamming)."""
    words: list[int] = []
    for value in range(256):
        if all((value ^ word).bit_count() >= distance for word in words):
            words.append(value)
    return words


def alignable_payload(rng: random.Random, size: int) -> bytes:
    """Bytes from a distance-4 code, never repeating one of the previous 4, so that after drops and single
    bit flips each received byte can still be matched to the byte it was sent as."""
    words = lexicode(4)
    out: list[int] = []
    for _ in range(size):
        out.append(rng.choice([w for w in words if w not in out[-4:]]))
    return bytes(out)


def align(sent: bytes, received: bytes) -> tuple[int, int]:
    """(dropped, flipped) as seen on the wire. A received byte within one bit of the next sent byte is that
    byte; anything else is 3+ bits away (distance 4, minus one flip), so the sent byte was dropped."""
    dropped = flipped = j = 0
    for byte in sent:
        if j < len(received) and (byte ^ received[j]).bit_count() <= 1:
            flipped += byte != received[j]
            j += 1
        else:
            dropped += 1
    assert j == len(received), f"{len(received) - j} received bytes match nothing that was sent"
    return dropped, flipped


def test_a_clean_wire_delivers_every_byte_both_ways(
    device: Device, start_proxy: Callable[..., tuple[NoiseProxy, int]]
) -> None:
    proxy, host = start_proxy(Noise())
    rng = random.Random(1)
    down, up = rng.randbytes(10_000), rng.randbytes(10_000)

    def all_arrived(received: dict[int, bytes]) -> bool:
        stats = proxy.stats  # bytes_out counts after the write returns, so it may lag what we read
        return (len(received[host]), len(received[device.master])) == (len(down), len(up)) and (
            stats.device_to_host.bytes_out,
            stats.host_to_device.bytes_out,
        ) == (len(down), len(up))

    got = pump({device.master: down, host: up}, [device.master, host], all_arrived, "clean wire")

    assert got[host] == down, "device -> host bytes changed on a clean wire"
    assert got[device.master] == up, "host -> device bytes changed on a clean wire"
    assert proxy.stats.device_to_host == DirectionStats(bytes_in=10_000, bytes_out=10_000)
    assert proxy.stats.host_to_device == DirectionStats(bytes_in=10_000, bytes_out=10_000)
    assert proxy.error is None


def test_a_noisy_wire_drops_and_flips_what_its_counters_say(
    device: Device, start_proxy: Callable[..., tuple[NoiseProxy, int]]
) -> None:
    size, flip, drop = 50_000, 0.01, 0.005
    proxy, host = start_proxy(Noise(flip=flip, drop=drop), seed=7)
    rng = random.Random(2)
    down, up = alignable_payload(rng, size), alignable_payload(rng, size)

    def all_arrived(received: dict[int, bytes]) -> bool:
        stats = proxy.stats
        return all(
            lane.bytes_in == size and len(received[fd]) == size - lane.dropped == lane.bytes_out
            for lane, fd in ((stats.device_to_host, host), (stats.host_to_device, device.master))
        )

    got = pump({device.master: down, host: up}, [device.master, host], all_arrived, "noisy wire")

    # Binomial: ~249 drops (sd 16) and ~498 flips (sd 22) per direction; the bands are 8+ sd wide.
    for name, lane, sent, received in (
        ("device_to_host", proxy.stats.device_to_host, down, got[host]),
        ("host_to_device", proxy.stats.host_to_device, up, got[device.master]),
    ):
        assert align(sent, received) == (lane.dropped, lane.flipped), name
        assert 0.5 * size * drop <= lane.dropped <= 1.5 * size * drop, f"{name}: {lane}"
        assert 0.5 * size * flip <= lane.flipped <= 1.5 * size * flip, f"{name}: {lane}"


def test_the_same_seed_gives_the_same_noise(
    device: Device, start_proxy: Callable[..., tuple[NoiseProxy, int]]
) -> None:
    sent = alignable_payload(random.Random(3), 5_000)
    runs = []
    for _ in range(2):
        proxy, host = start_proxy(Noise(flip=0.01, drop=0.005), seed=11)

        def all_arrived(received: dict[int, bytes], proxy: NoiseProxy = proxy, host: int = host) -> bool:
            lane = proxy.stats.device_to_host
            return lane.bytes_in == len(sent) and len(received[host]) == lane.bytes_out

        runs.append(pump({device.master: sent}, [host], all_arrived, "seeded run")[host])
        proxy.stop()  # frees the device path for the next proxy
    assert runs[0] == runs[1]
    assert runs[0] != sent


def test_a_throttled_wire_takes_the_time_of_its_baud_rate(
    device: Device, start_proxy: Callable[..., tuple[NoiseProxy, int]]
) -> None:
    _proxy, host = start_proxy(Noise(baud=9600))
    rng = random.Random(4)
    down, up = rng.randbytes(960), rng.randbytes(960)  # one second each way at 960 bytes/s
    arrived: dict[int, float] = {}

    def note_arrivals(received: dict[int, bytes]) -> bool:
        for fd, want in ((host, len(down)), (device.master, len(up))):
            if len(received[fd]) >= want:
                arrived.setdefault(fd, time.monotonic())
        return len(arrived) == 2

    began = time.monotonic()
    got = pump({device.master: down, host: up}, [device.master, host], note_arrivals, "throttled wire")

    assert got[host] == down
    assert got[device.master] == up
    # A lower bound only: a loaded machine may be slower, never faster than the wire.
    assert arrived[host] - began >= 0.9, "device -> host was faster than 9600 baud"
    assert arrived[device.master] - began >= 0.9, "host -> device was faster than 9600 baud"


def test_a_vanished_device_ends_forwarding_with_a_reason(
    device: Device, start_proxy: Callable[..., tuple[NoiseProxy, int]]
) -> None:
    proxy, _host = start_proxy(Noise())
    device.close()

    deadline = time.monotonic() + TIMEOUT
    while proxy.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.error is not None, "the proxy did not notice that the device side closed"
    assert "device" in proxy.error

    began = time.monotonic()
    proxy.stop()
    proxy.stop()
    assert time.monotonic() - began < 5.0, "stop() hung after the device went away"


def test_the_cli_prints_a_pty_path_and_forwards_to_it(device: Device) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge.noise_proxy", device.path, "--seed", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, f"the CLI printed no path within {TIMEOUT} s"
        path = proc.stdout.readline().strip()
        device.release_slave()
        assert os.path.exists(path), f"the CLI printed {path!r}, which does not exist"
        host = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            assert os.isatty(host)
            got = pump({host: b"ping"}, [device.master], lambda r: len(r[device.master]) >= 4, "CLI proxy")
            assert got[device.master] == b"ping"
        finally:
            os.close(host)
        proc.terminate()
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "host_to_device: bytes_in=4 bytes_out=4" in err


def test_the_cli_has_help_text() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "firmware_bridge.noise_proxy", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    for option in ("DEVICE_PATH", "--flip", "--drop", "--baud", "--seed"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"flip": -0.1}, "flip"),
        ({"flip": float("nan")}, "flip"),
        ({"drop": 1.5}, "drop"),
        ({"baud": 0}, "baud"),
        ({"baud": -9600}, "baud"),
    ],
)
def test_a_bad_noise_setting_is_refused_by_name(fields: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        Noise(**fields)
