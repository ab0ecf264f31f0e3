"""A noise proxy between two pseudo-terminals, so the link layer can be tested against a bad wire.

The MCU simulator owns a pty and prints its slave path; the proxy opens that path as the device side, makes a
pty of its own and offers that one's slave path to the host, which opens it as if it were the MCU's port.
Each direction independently drops bytes, flips one bit of a byte, and can be throttled to a baud rate, so a
retransmit timer meets the losses and the latency of a real UART instead of a perfect in-memory pipe.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import random
import select
import signal
import sys
import threading
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from types import FrameType, TracebackType

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how long a forwarding thread waits before it looks at the stop flag again
CHUNK = 4096


@dataclass(frozen=True)
class Noise:
    """A bad wire: each byte is lost with `drop`, else gets one bit flipped with `flip`; `baud` paces it."""

    flip: float = 0.0
    drop: float = 0.0
    baud: int | None = None

    def __post_init__(self) -> None:
        for name in ("flip", "drop"):
            rate = getattr(self, name)
            # written so that NaN fails too
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {rate!r}")
        if self.baud is not None and self.baud <= 0:
            raise ValueError(f"baud must be a positive number of bits per second, got {self.baud!r}")

    @property
    def bytes_per_second(self) -> float | None:
        """8N1 framing: a start bit, 8 data bits and a stop bit put 10 bits on the wire per byte."""
        return None if self.baud is None else self.baud / 10


@dataclass(frozen=True)
class DirectionStats:
    """What happened to the bytes going one way; bytes_out + dropped == bytes_in once the line is idle."""

    bytes_in: int = 0
    bytes_out: int = 0
    flipped: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class ProxyStats:
    """Counters for both directions, so a test can compare what arrived with what the proxy did to it."""

    device_to_host: DirectionStats
    host_to_device: DirectionStats


@dataclass
class _Lane:
    """One direction: its own random stream, so what happens to a byte depends only on the bytes before it
    in the same direction, not on how the two threads interleave or how reads were chunked."""

    name: str
    rng: random.Random
    stats: DirectionStats = field(default_factory=DirectionStats)
    due: float = 0.0  # monotonic time at which the next byte may leave, when throttled


class NoiseProxy:
    """Forwards bytes between a device pty and a new host pty, adding noise; start() it, or use `with`."""

    def __init__(self, device_path: str, noise: Noise, seed: int = 0) -> None:
        self.device_path = device_path
        self.noise = noise
        self.seed = seed
        self._lanes = {
            name: _Lane(name, random.Random(f"{seed}:{name}"))
            for name in ("device_to_host", "host_to_device")
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fds: list[int] = []
        self._host_path: str | None = None
        self._error: str | None = None

    @property
    def host_path(self) -> str:
        """The slave path of the proxy's own pty: what the host opens instead of the MCU's port."""
        if self._host_path is None:
            raise RuntimeError("NoiseProxy.host_path is known only after start()")
        return self._host_path

    @property
    def error(self) -> str | None:
        """Why forwarding ended on its own, e.g. the device side went away; None if it did not."""
        return self._error

    @property
    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(self._lanes["device_to_host"].stats, self._lanes["host_to_device"].stats)

    def start(self) -> None:
        """Open both sides and start one forwarding thread per direction."""
        if self._fds or self._stop.is_set():
            raise RuntimeError("a NoiseProxy starts once")
        try:
            # Non-blocking so that a full buffer on either side can never keep a thread from seeing stop().
            device = os.open(self.device_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            self._fds.append(device)
            tty.setraw(device)
            master, slave = os.openpty()
            self._fds += [master, slave]
            # We keep our own slave fd open for the proxy's lifetime and never read it: while any slave fd
            # is open, reading the master does not fail with EIO before the host opens the path or after it
            # closes it, and the raw termios set here stays in place for the host's next open.
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._host_path = os.ttyname(slave)
        except OSError:
            self._close_fds()
            raise
        # Daemon threads: a CLI that exits mid-write must not wait for them.
        self._threads = [
            threading.Thread(target=self._forward, args=args, name=f"noise-proxy-{args[2].name}", daemon=True)
            for args in (
                (device, master, self._lanes["device_to_host"], True),
                (master, device, self._lanes["host_to_device"], False),
            )
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop forwarding and close every fd; safe to call twice or after the device side went away."""
        self._stop.set()
        for thread in self._threads:
            thread.join()  # bounded: every wait in the threads is a poll of at most POLL_SECONDS
        self._threads = []
        self._close_fds()

    def __enter__(self) -> NoiseProxy:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._error is None:
                self._error = reason
        logger.warning("noise proxy: device=%s %s; forwarding stopped", self.device_path, reason)
        self._stop.set()  # the other direction has nothing to talk to either

    def _forward(self, src: int, dst: int, lane: _Lane, src_is_device: bool) -> None:
        poller = select.poll()
        poller.register(src, select.POLLIN)
        rate = self.noise.bytes_per_second
        # Throttled, read about 50 ms of line time at once, so the writer meets back-pressure in the kernel
        # buffer as it would on a UART, rather than in a queue inside the proxy.
        size = CHUNK if rate is None else max(1, min(CHUNK, math.ceil(rate * 0.05)))
        while not self._stop.is_set():
            events = poller.poll(POLL_SECONDS * 1000)
            if not events:
                continue
            try:
                data = os.read(src, size)
            except BlockingIOError:
                continue
            except OSError as err:
                if src_is_device or err.errno != errno.EIO:
                    self._fail(f"{'device' if src_is_device else 'host'} read failed: {err}")
                    return
                # The host master reports EIO while no slave fd is open: no peer right now; it may reopen.
                self._stop.wait(POLL_SECONDS)
                continue
            if not data:
                if src_is_device:
                    self._fail("device read returned EOF")
                    return
                self._stop.wait(POLL_SECONDS)
                continue
            out = self._apply_noise(data, lane)
            if not self._deliver(dst, out, lane, dst_is_device=not src_is_device):
                return

    def _apply_noise(self, data: bytes, lane: _Lane) -> bytes:
        flip, drop = self.noise.flip, self.noise.drop
        flipped = 0
        if flip == 0.0 and drop == 0.0:
            out = data
        else:
            rng = lane.rng
            kept = bytearray()
            for byte in data:
                if rng.random() < drop:
                    continue
                if rng.random() < flip:
                    byte ^= 1 << rng.randrange(8)
                    flipped += 1
                kept.append(byte)
            out = bytes(kept)
        with self._lock:
            lane.stats = _bump(lane.stats, bytes_in=len(data), dropped=len(data) - len(out), flipped=flipped)
        return out

    def _deliver(self, dst: int, data: bytes, lane: _Lane, dst_is_device: bool) -> bool:
        """Write `data`, paced per byte when throttled; False when forwarding must end."""
        rate = self.noise.bytes_per_second
        if rate is None:
            return self._write_all(dst, data, lane, dst_is_device)
        interval = 1.0 / rate
        # An idle line banks no credit: byte k of a burst leaves no earlier than start + k / rate. Bytes
        # that fell due while the thread overslept leave together, so the average rate is the baud rate.
        lane.due = max(lane.due, time.monotonic())
        sent = 0
        while sent < len(data):
            wait = lane.due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return False
            due_now = min(len(data) - sent, 1 + int((time.monotonic() - lane.due) / interval))
            if not self._write_all(dst, data[sent : sent + due_now], lane, dst_is_device):
                return False
            sent += due_now
            lane.due += due_now * interval
        return True

    def _write_all(self, dst: int, data: bytes, lane: _Lane, dst_is_device: bool) -> bool:
        poller = select.poll()
        poller.register(dst, select.POLLOUT)
        view = memoryview(data)
        while view:
            if self._stop.is_set():
                return False
            try:
                written = os.write(dst, view)
            except BlockingIOError:
                poller.poll(POLL_SECONDS * 1000)  # the reader is behind: wait for room, but not forever
                continue
            except OSError as err:
                self._fail(f"{'device' if dst_is_device else 'host'} write failed: {err}")
                return False
            view = view[written:]
            with self._lock:
                lane.stats = _bump(lane.stats, bytes_out=written)
        return True


def _bump(stats: DirectionStats, **add: int) -> DirectionStats:
    return replace(stats, **{name: getattr(stats, name) + n for name, n in add.items()})


def main(argv: Sequence[str] | None = None) -> int:
    """Run a proxy until SIGTERM or SIGINT; the host-side path goes to stdout, the counters to stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.noise_proxy",
        description="Put a noisy, optionally slow wire between an MCU simulator's pty and the host. "
        "Prints the pty path the host should open, runs until SIGTERM or SIGINT, then prints counters.",
    )
    parser.add_argument("device_path", metavar="DEVICE_PATH", help="the pty slave path the simulator printed")
    parser.add_argument("--flip", type=float, default=0.0, help="chance that a byte gets one bit flipped")
    parser.add_argument("--drop", type=float, default=0.0, help="chance that a byte is lost")
    parser.add_argument("--baud", type=int, default=None, help="throttle each direction to this rate (8N1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, so a failing run repeats")
    args = parser.parse_args(argv)
    try:
        noise = Noise(flip=args.flip, drop=args.drop, baud=args.baud)
    except ValueError as err:
        parser.error(str(err))

    finished = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        finished.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    proxy = NoiseProxy(args.device_path, noise, seed=args.seed)
    try:
        proxy.start()
    except OSError as err:
        print(f"noise_proxy: cannot open {args.device_path}: {err.strerror}", file=sys.stderr)
        return 1
    try:
        print(proxy.host_path, flush=True)
        while not finished.wait(POLL_SECONDS * 4) and proxy.error is None:
            pass
    finally:
        proxy.stop()
    for direction in fields(ProxyStats):
        lane = getattr(proxy.stats, direction.name)
        counts = " ".join(f"{f.name}={getattr(lane, f.name)}" for f in fields(DirectionStats))
        print(f"{direction.name}: {counts}", file=sys.stderr)
    return 0 if proxy.error is None else 1  # the reason is already in the log


if __name__ == "__main__":
    sys.exit(main())
