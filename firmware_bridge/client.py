"""The host's link to the MCU for asyncio code: `HostProtocol` driven over a `SerialTransport`.

    async with McuClient("/dev/ttyACM0") as mcu:
        await mcu.wait_linked()
        result = await mcu.command("GATE_PULSE", ms=1500)
        async for event in mcu.events(): ...

One task runs the protocol: it feeds it the bytes the port delivers, ticks it every 10 ms, writes what it
wants written, and reopens the port (every `reopen_s`) when it fails or disappears. Commands wait for their
REPLY; a link lost meanwhile fails them with `LinkLostError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final

from firmware_bridge.errors import IncompatibleFirmwareError, LinkLostError, NotLinkedError, TransportError
from firmware_bridge.host import (
    Event,
    Happening,
    HostCounters,
    HostProtocol,
    Linked,
    LinkLost,
    LinkState,
    Refused,
    Replied,
    Status,
)
from firmware_bridge.schema import Fields, ReplyResult
from firmware_bridge.transport import SerialTransport

log = logging.getLogger(__name__)

TICK_S: Final = 0.010
REOPEN_S: Final = 0.5
EVENT_BACKLOG: Final = 1_000


class McuClient:
    """A link to one MCU over one serial URL (device, pty, `socket://`, `loop://`)."""

    def __init__(
        self, url: str, *, baudrate: int = 115_200, rto: float = 0.100, reopen_s: float = REOPEN_S
    ) -> None:
        self.url = url
        self._baudrate = baudrate
        self._rto = rto
        self._reopen_s = reopen_s
        self._protocol: HostProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: SerialTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[ReplyResult]] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue(EVENT_BACKLOG)
        self._linked = asyncio.Event()
        self._settled = asyncio.Event()  # linked or refused: what wait_linked waits for
        self._refused: str | None = None
        self.linked_info: Linked | None = None
        self.status: Fields | None = None
        self.transport_error: str | None = None

    async def __aenter__(self) -> McuClient:
        self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def start(self) -> None:
        # Kept: on 3.11 asyncio.get_running_loop() is a getpid() system call, twice per round trip.
        self._loop = loop = asyncio.get_running_loop()
        self._protocol = HostProtocol(loop.time(), rto=self._rto)
        self._task = asyncio.create_task(self._run(), name=f"mcu {self.url}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_waiting("the link was closed")

    @property
    def counters(self) -> HostCounters:
        assert self._protocol is not None, "start() first"
        return self._protocol.counters

    @property
    def linked(self) -> bool:
        return self._linked.is_set()

    async def wait_linked(self, within_s: float = 5.0) -> Linked:
        """Wait for the handshake; raises `IncompatibleFirmwareError` or `TimeoutError` (naming the port)."""
        if self._refused is not None:
            raise IncompatibleFirmwareError(self._refused)
        try:
            async with asyncio.timeout(within_s):
                while True:
                    await self._settled.wait()
                    if self._refused is not None:
                        raise IncompatibleFirmwareError(self._refused)
                    if self.linked_info is not None and self.linked:
                        return self.linked_info
                    self._settled.clear()
        except TimeoutError:
            if self._refused is not None:
                raise IncompatibleFirmwareError(self._refused) from None
            detail = f": {self.transport_error}" if self.transport_error else ""
            raise TimeoutError(f"no link to the MCU on {self.url} after {within_s:.1f} s{detail}") from None

    async def command(self, name: str, **fields: int | bytes) -> ReplyResult:
        """Send a command and wait for its result. Raises `NotLinkedError`, `LinkLostError` (it may or may
        not have run), `PayloadError` (a field out of bounds: nothing was sent)."""
        if self._refused is not None:
            raise IncompatibleFirmwareError(self._refused)
        protocol, loop = self._protocol, self._loop
        if protocol is None or loop is None or not self.linked:
            raise NotLinkedError(f"no link to the MCU on {self.url}")
        # Out now, not at the next tick: the round trip is the link's latency, not the tick's.
        seq = protocol.command(name, fields, loop.time())  # **fields made a dict of its own already
        reply: asyncio.Future[ReplyResult] = loop.create_future()
        self._waiting[seq] = reply
        self._flush()
        return await reply

    async def events(self) -> AsyncIterator[Event]:
        """Events in the order the MCU produced them, each once."""
        while True:
            yield await self._events.get()

    def _flush(self) -> None:
        if self._protocol is None or self._transport is None:
            return
        data = self._protocol.data_to_send()
        if data:
            self._transport.write(data)

    async def _run(self) -> None:
        assert self._protocol is not None
        protocol, loop = self._protocol, asyncio.get_running_loop()
        while True:
            failed: asyncio.Future[TransportError] = loop.create_future()

            def fail(error: TransportError, failed: asyncio.Future[TransportError] = failed) -> None:
                if not failed.done():
                    failed.set_result(error)

            transport = SerialTransport(self.url, self._received, fail, self._baudrate)
            try:
                transport.open()
            except TransportError as err:
                self._transport_failed(str(err), loop.time())
                await asyncio.sleep(self._reopen_s)
                continue
            self._transport = transport
            self.transport_error = None
            try:
                while not failed.done():
                    await asyncio.wait([failed], timeout=TICK_S)
                    self._handle(protocol.tick(loop.time()))
                    self._flush()
            except TransportError as err:  # from a write in _flush
                fail(err)
            finally:
                self._transport = None
                transport.close()
            self._transport_failed(str(failed.result()), loop.time())
            await asyncio.sleep(self._reopen_s)

    def _received(self, data: bytes) -> None:
        assert self._protocol is not None
        assert self._loop is not None
        self._handle(self._protocol.receive(data, self._loop.time()))
        try:
            self._flush()
        except TransportError as err:
            log.warning("%s", err)  # the tick loop's next write fails the same way and reopens the port

    def _transport_failed(self, reason: str, now: float) -> None:
        if self.transport_error != reason:
            log.warning("serial port trouble: %s", reason)
        self.transport_error = reason
        if self._protocol is not None and self._protocol.state is LinkState.LINKED:
            self._protocol.restart(now, reason)
            self._protocol.data_to_send()  # the port is gone: the HELLO goes out once it is back
            self._handle(self._protocol.tick(now))

    def _handle(self, happened: list[Happening]) -> None:
        for happening in happened:
            if isinstance(happening, Replied):
                waiter = self._waiting.pop(happening.seq, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(happening.result)
            elif isinstance(happening, Event):
                if self._events.full():
                    log.warning("event backlog full: %s dropped (nobody is reading events)", happening.name)
                else:
                    self._events.put_nowait(happening)
            elif isinstance(happening, Status):
                self.status = happening.fields
            elif isinstance(happening, Linked):
                self.linked_info = happening
                self._linked.set()
                self._settled.set()
            elif isinstance(happening, LinkLost):
                self._linked.clear()
                self._settled.clear()
                self._fail_waiting(f"link to the MCU lost: {happening.reason}")
            elif isinstance(happening, Refused):
                self._refused = happening.reason
                self._linked.clear()
                self._settled.set()
                self._fail_waiting(happening.reason)

    def _fail_waiting(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_exception(LinkLostError(f"{reason}; the command may or may not have run"))
