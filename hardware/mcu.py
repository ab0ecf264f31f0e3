"""The robot's devices driven through the microcontroller: `[hardware] backend = "mcu"`.

`McuDevices` owns one `McuClient` and hands out one object per device Protocol. It is the one place where
firmware_bridge's errors and results become hardware's: OK returns, REFUSED_ESTOP raises `EStopPressedError`,
any other result `DeviceError`, and no link (or a link lost while waiting) `DeviceUnavailableError`.

The e-stop is refused in two layers: the MCU refuses every actuator command while it is pressed, and this
side refuses them first while it knows it is pressed, so a pressed e-stop costs no round trip and holds even
if a firmware forgot to check. What this side knows comes from the MCU's events and from its 10 Hz STATUS;
`McuState` merges the two in order (a STATUS older than the last event applied is ignored), so a lost event
still converges within a status period and a stale status never undoes a newer event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final

from firmware_bridge.client import McuClient
from firmware_bridge.errors import FirmwareBridgeError, IncompatibleFirmwareError
from firmware_bridge.host import Event
from firmware_bridge.schema import (
    COMPARTMENTS,
    CompartmentState,
    Fields,
    GateState,
    LightPattern,
    ReplyResult,
)
from hardware.devices import CardTap, CardUid, check_arguments, check_compartment
from hardware.errors import DeviceError, DeviceUnavailableError, EStopPressedError
from hardware.state import EStopLatch, TapBuffer

log = logging.getLogger(__name__)

STATUS_POLL_S: Final = 0.050  # half the MCU's status period: a change is seen within 150 ms at worst
LINK_POLL_S: Final = 1.0


class McuState:
    """What the host knows of the MCU's devices, from events and STATUS, sans-IO."""

    def __init__(self) -> None:
        self.latch = EStopLatch()
        self.tap_buffer = TapBuffer()
        self.gate = GateState.CLOSED
        self.compartments = [CompartmentState.LOCKED] * COMPARTMENTS
        self._boot_id: int | None = None
        self._event_seq = 0  # of the last event applied, in this boot
        self._status: Fields | None = None

    def apply_event(self, event: Event) -> None:
        fields = event.fields
        self._boot(event.boot_id)
        self._event_seq = max(self._event_seq, int(fields["event_seq"]))
        if event.name == "CARD_READ":
            uid = fields["uid"]
            assert isinstance(uid, bytes)
            self.tap_buffer.put(CardTap(int(fields["reader"]), CardUid(uid)))
            log.debug("card tap reader=%d", fields["reader"])
        elif event.name == "ESTOP":
            self.latch.set(bool(fields["pressed"]), "MCU event")
        elif event.name == "GATE_STATE":
            self.gate = GateState(int(fields["state"]))
        elif event.name == "COMPARTMENT_STATE":
            self.compartments[int(fields["index"])] = CompartmentState(int(fields["state"]))
        elif event.name == "FAULT":
            active = "active" if fields["active"] else "cleared"
            log.warning("MCU fault code=%#06x %s", fields["code"], active)

    def apply_status(self, fields: Fields) -> None:
        """Take a STATUS once; skip it when it predates the last event applied (the next one will do)."""
        if fields is self._status:
            return
        self._status = fields
        boot_id = int(fields["boot_id"])
        if boot_id == self._boot_id and int(fields["last_event_seq"]) < self._event_seq:
            return
        self._boot(boot_id)
        self.latch.set(bool(fields["estop"]), "MCU status")
        self.gate = GateState(int(fields["gate"]))

    def _boot(self, boot_id: int) -> None:
        if boot_id == self._boot_id:
            return
        if self._boot_id is not None:
            log.warning("MCU restarted boot=%08x: compartments locked, gate from its status", boot_id)
        self._boot_id = boot_id
        self._event_seq = 0
        # An MCU starts in its safe state, and STATUS carries no compartment: assume what it guarantees.
        self.compartments = [CompartmentState.LOCKED] * COMPARTMENTS


class McuDevices:
    """The devices behind one MCU link; `start()` (or `async with`) before use, `close()` after."""

    def __init__(self, client: McuClient) -> None:
        self.client = client
        self.state = McuState()
        self._tasks: list[asyncio.Task[None]] = []
        self.gate = McuGate(self)
        self.lights = McuLights(self)
        self.buzzer = McuBuzzer(self)
        self.compartments = McuCompartments(self)
        self.drive = McuDrive(self)
        self.card_reader = McuCardReader(self)
        self.estop = McuEStop(self)

    async def __aenter__(self) -> McuDevices:
        self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def start(self) -> None:
        self.client.start()
        self._tasks = [
            asyncio.create_task(self._follow_events(), name=f"mcu events {self.client.url}"),
            asyncio.create_task(self._follow_status(), name=f"mcu status {self.client.url}"),
        ]

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

    @property
    def linked(self) -> bool:
        return self.client.linked

    async def wait_linked(self) -> None:
        """Wait for the link (bound it with `asyncio.timeout`); an incompatible firmware is
        `DeviceUnavailableError` at once."""
        while True:
            try:
                await self.client.wait_linked(within_s=LINK_POLL_S)
            except TimeoutError:
                continue
            except IncompatibleFirmwareError as err:
                raise DeviceUnavailableError(str(err)) from err
            return

    def sync_status(self) -> None:
        status = self.client.status
        if status is not None:
            self.state.apply_status(status)

    async def command(self, command: str, call: str, **values: int) -> None:
        """Send one command and translate its outcome; `call` names it for the agent (`gate.pulse`)."""
        check_arguments(command, call, values)
        if command != "STOP":
            self.sync_status()
            self.state.latch.refuse_if_pressed(call)
        try:
            result = await self.client.command(command, **{k: int(v) for k, v in values.items()})
        except FirmwareBridgeError as err:
            raise DeviceUnavailableError(f"{call}: {err}") from err
        if result is ReplyResult.OK:
            return
        if result is ReplyResult.REFUSED_ESTOP:
            self.state.latch.set(True, "MCU reply")
            raise EStopPressedError(call, by_mcu=True)
        if result is ReplyResult.NOT_LINKED:
            raise DeviceUnavailableError(
                f"{call}: the MCU is not linked (it restarted or timed out); nothing ran"
            )
        raise DeviceError(call, result.name)

    async def _follow_events(self) -> None:
        async for event in self.client.events():
            try:
                self.state.apply_event(event)
            except Exception:
                # One bad event must not stop the e-stop and the card reader for good.
                log.exception("MCU event %s not applied", event.name)

    async def _follow_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_POLL_S)
            self.sync_status()


class McuGate:
    def __init__(self, mcu: McuDevices) -> None:
        self._mcu = mcu

    async def pulse(self, ms: int) -> None:
        await self._mcu.command("GATE_PULSE", "gate.pulse", ms=ms)

    @property
    def state(self) -> GateState:
        self._mcu.sync_status()
        return self._mcu.state.gate


class McuLights:
    def __init__(self, mcu: McuDevices) -> None:
        self._mcu = mcu

    async def show(self, pattern: LightPattern, red: int, green: int, blue: int, ms: int) -> None:
        await self._mcu.command(
            "LIGHTS", "lights.show", pattern=pattern, red=red, green=green, blue=blue, ms=ms
        )


class McuBuzzer:
    def __init__(self, mcu: McuDevices) -> None:
        self._mcu = mcu

    async def beep(self, freq_hz: int, ms: int) -> None:
        await self._mcu.command("BUZZER", "buzzer.beep", freq_hz=freq_hz, ms=ms)


class McuCompartments:
    def __init__(self, mcu: McuDevices) -> None:
        self._mcu = mcu

    async def unlock(self, index: int, ms: int) -> None:
        await self._mcu.command("COMPARTMENT_UNLOCK", "compartments.unlock", index=index, ms=ms)

    def state(self, index: int) -> CompartmentState:
        check_compartment(index)
        self._mcu.sync_status()
        return self._mcu.state.compartments[index]


class McuDrive:
    def __init__(self, mcu: McuDevices) -> None:
        self._mcu = mcu

    async def move(self, left_mm_s: int, right_mm_s: int, deadline_ms: int) -> None:
        await self._mcu.command(
            "DRIVE", "drive.move", left_mm_s=left_mm_s, right_mm_s=right_mm_s, deadline_ms=deadline_ms
        )

    async def stop(self) -> None:
        await self._mcu.command("STOP", "drive.stop")


class McuCardReader:
    def __init__(self, mcu: McuDevices) -> None:
        self._mcu = mcu

    def taps(self) -> AsyncIterator[CardTap]:
        return self._mcu.state.tap_buffer.taps()


class McuEStop:
    def __init__(self, mcu: McuDevices) -> None:
        self._mcu = mcu

    @property
    def pressed(self) -> bool:
        self._mcu.sync_status()
        return self._mcu.state.latch.pressed

    def changes(self) -> AsyncIterator[bool]:
        return self._mcu.state.latch.changes()
