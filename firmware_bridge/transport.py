"""Moves bytes between a pyserial port and asyncio, and never interprets them.

Any pyserial URL works: a device path (`/dev/ttyACM0`), a pty (`/dev/pts/7`), `socket://host:port`,
`loop://`. A reader thread blocks in pyserial's `read` with a short timeout and hands each chunk to the
event loop; writes go straight to the port with a write timeout. Every failure is a `TransportError` that
names the port and the cause: nothing hangs, and the caller decides whether to reopen.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Final

import serial

from firmware_bridge.errors import TransportError

log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 0.05
WRITE_TIMEOUT_S: Final = 1.0


class SerialTransport:
    """One open port. `received` yields chunks of bytes, and a `TransportError` once the port fails."""

    def __init__(self, url: str, baudrate: int = 115_200) -> None:
        self.url = url
        self._baudrate = baudrate
        self._port: serial.SerialBase | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.received: asyncio.Queue[bytes | TransportError] = asyncio.Queue()

    def open(self) -> None:
        """Open the port and start reading; raises `TransportError` if it cannot be opened."""
        loop = asyncio.get_running_loop()
        try:
            port = serial.serial_for_url(
                self.url, baudrate=self._baudrate, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise TransportError(f"cannot open {self.url}: {err}") from err
        port.reset_input_buffer()  # whatever waited in the port belongs to an earlier conversation
        self._port = port
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._read, args=(port, loop), name=f"serial {self.url}", daemon=True
        )
        self._thread.start()

    def write(self, data: bytes) -> None:
        if self._port is None:
            raise TransportError(f"{self.url} is not open")
        try:
            self._port.write(data)
        except (serial.SerialException, serial.SerialTimeoutException, OSError) as err:
            raise TransportError(f"writing to {self.url} failed: {err}") from err

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * READ_TIMEOUT_S + 1.0)
            self._thread = None
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError) as err:
                log.debug("closing %s: %s", self.url, err)
            self._port = None

    def _read(self, port: serial.SerialBase, loop: asyncio.AbstractEventLoop) -> None:
        while not self._stop.is_set():
            try:
                # Block for the first byte only, then take what already waits: a larger read would sit out
                # the whole timeout for bytes that are not coming. (Every pyserial port class has in_waiting;
                # SerialBase, the type serial_for_url is declared to return, does not.)
                waiting: int = getattr(port, "in_waiting", 0)
                data = port.read(max(1, waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as err:
                # TypeError/AttributeError: pyserial's own state when the port is closed under it.
                if not self._stop.is_set():
                    failure = TransportError(f"reading from {self.url} failed: {err}")
                    loop.call_soon_threadsafe(self.received.put_nowait, failure)
                return
            if data:
                loop.call_soon_threadsafe(self.received.put_nowait, bytes(data))
