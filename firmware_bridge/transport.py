"""Moves bytes between a pyserial port and asyncio, and never interprets them.

Any pyserial URL works: a device path (`/dev/ttyACM0`), a pty (`/dev/pts/7`), `socket://host:port`,
`loop://`. Ports with a file descriptor (devices, ptys) are read by the event loop itself when they are
readable; the others by a thread blocked in pyserial's `read` that hands chunks to the loop. Writes go
straight to the port, with a write timeout. Every failure reaches `on_error` (or is raised) as a
`TransportError` that names the port and the cause: nothing hangs, and the caller decides whether to reopen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Final

import serial

from firmware_bridge.errors import TransportError

log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 0.05
WRITE_TIMEOUT_S: Final = 1.0


class SerialTransport:
    """One open port: bytes read go to `on_data`, a failure to `on_error` (once), both on the loop."""

    def __init__(
        self,
        url: str,
        on_data: Callable[[bytes], None],
        on_error: Callable[[TransportError], None],
        baudrate: int = 115_200,
    ) -> None:
        self.url = url
        self._on_data = on_data
        self._on_error = on_error
        self._baudrate = baudrate
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failed = False

    def open(self) -> None:
        """Open the port and start reading; raises `TransportError` if it cannot be opened."""
        self._loop = loop = asyncio.get_running_loop()
        try:
            port = serial.serial_for_url(
                self.url, baudrate=self._baudrate, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise TransportError(f"cannot open {self.url}: {err}") from err
        port.reset_input_buffer()  # whatever waited in the port belongs to an earlier conversation
        self._port = port
        self._failed = False
        fd = _fileno(port)
        if fd is not None:
            # pyserial opens device paths non-blocking: the loop reads them when readable, no thread hop.
            self._fd = fd
            loop.add_reader(fd, self._readable)
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._read, args=(port, loop), name=f"serial {self.url}", daemon=True
        )
        self._thread.start()

    def write(self, data: bytes) -> None:
        if self._port is None:
            raise TransportError(f"{self.url} is not open")
        if self._fd is not None:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0
            except OSError as err:
                raise TransportError(f"writing to {self.url} failed: {err}") from err
            if written == len(data):
                return  # the usual case, at a third of the cost of pyserial's write
            data = data[written:]
        try:
            self._port.write(data)
        except (serial.SerialException, serial.SerialTimeoutException, OSError) as err:
            raise TransportError(f"writing to {self.url} failed: {err}") from err

    def close(self) -> None:
        self._stop.set()
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None
        if self._thread is not None:
            self._thread.join(timeout=2 * READ_TIMEOUT_S + 1.0)
            self._thread = None
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError) as err:
                log.debug("closing %s: %s", self.url, err)
            self._port = None

    def _fail(self, error: TransportError) -> None:
        if not self._failed and not self._stop.is_set():
            self._failed = True
            if self._fd is not None and self._loop is not None:
                self._loop.remove_reader(self._fd)
                self._fd = None
            self._on_error(error)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as err:
            self._fail(TransportError(f"reading from {self.url} failed: {err}"))
            return
        if not data:
            self._fail(TransportError(f"{self.url} was closed at the other end"))
            return
        self._on_data(data)

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
                failure = TransportError(f"reading from {self.url} failed: {err}")
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    loop.call_soon_threadsafe(self._fail, failure)
                return
            if data:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._on_data, bytes(data))


def _fileno(port: serial.SerialBase) -> int | None:
    """The port's file descriptor, for ports that are files (devices, ptys); None for URL handlers."""
    fileno = getattr(port, "fileno", None)
    if fileno is None:
        return None
    try:
        fd: int = fileno()
    except (serial.SerialException, OSError, AttributeError, NotImplementedError):
        return None
    return fd
