"""The agent's side of the hardware: watching the MCU link, the e-stop and the card reader; the safe state.

`hardware.factory.open_devices` gives the device Protocols; this module turns what they report into the
robot's status and live events, each watcher a supervised part of `robot-agent run`:
- `mcu_link`: the link's state and the firmware version into `RobotStatus.mcu_changed`, a WARNING and a live
  "fault" when it is lost. While it is down the devices refuse commands themselves (`DeviceUnavailableError`)
  and `McuDevices` handshakes again by itself; nothing here retries. The simulated backend is always linked,
  its firmware "simulated".
- `estop`: every change into `RobotStatus.estop_changed` (the status's listener makes it a live "estop").
- `card_reader`: each tap a live "card_tap" event with the reader's number only, and the tap itself to
  whoever subscribed to `CardTaps` (the local API's card login): the UID never reaches a log or an event.

`safe_state()` is what the agent does last on SIGTERM: lights off and STOP (the MCU's STOP puts every
actuator in its safe state: drive stopped, gate closed, compartments locked, buzzer off).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Final

from hardware.devices import CardTap, LightPattern
from hardware.errors import HardwareError
from hardware.factory import Devices
from robot_agent.live import LiveEvents
from robot_agent.status import RobotStatus

log = logging.getLogger(__name__)

LINK_POLL_S: Final = 0.2
SAFE_STATE_S: Final = 1.0  # each safe-state command's bound: a lost link must not hold up the shutdown
TAP_QUEUE: Final = 16


def firmware_text(fw_version: int) -> str:
    """`major.minor.patch` from HELLO_ACK's `fw_version` (major << 16 | minor << 8 | patch)."""
    return f"{fw_version >> 16 & 0xFF}.{fw_version >> 8 & 0xFF}.{fw_version & 0xFF}"


class TapSubscription:
    """One subscriber's card taps, newest kept when it falls behind; `async for`, then `close()`."""

    def __init__(self, owner: CardTaps) -> None:
        self._owner = owner
        self._queue: collections.deque[CardTap] = collections.deque(maxlen=TAP_QUEUE)
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, tap: CardTap) -> None:
        self._queue.append(tap)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._owner._subscribers.discard(self)
        self._ready.set()

    async def __aenter__(self) -> TapSubscription:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[CardTap]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[CardTap]:
        while not self._closed:
            if self._queue:
                yield self._queue.popleft()
                continue
            self._ready.clear()
            await self._ready.wait()


class CardTaps:
    """The card reader's taps for the agent's own readers (the local API's card login), on the event loop.

    The reader delivers each tap once, to one reader (`CardReader.taps`); the agent is that reader and hands
    each tap to every subscriber present at the time. A tap nobody subscribed to is gone: a login is only
    ever started by a tap that comes after someone asked for one."""

    def __init__(self) -> None:
        self._subscribers: set[TapSubscription] = set()
        self.taps = 0

    def subscribe(self) -> TapSubscription:
        subscription = TapSubscription(self)
        self._subscribers.add(subscription)
        return subscription

    def publish(self, tap: CardTap) -> None:
        self.taps += 1
        for subscription in list(self._subscribers):
            subscription.put(tap)


class DeviceWatch:
    """The watchers of one set of devices; each `async` method is a part for the supervisor."""

    def __init__(
        self,
        devices: Devices,
        status: RobotStatus,
        live: LiveEvents,
        card_taps: CardTaps,
        *,
        link_poll_s: float = LINK_POLL_S,
    ) -> None:
        self.devices = devices
        self._status = status
        self._live = live
        self._card_taps = card_taps
        self._link_poll_s = link_poll_s

    async def mcu_link(self) -> None:
        """Follow the MCU link until cancelled (simulated backend: linked once, then nothing to follow)."""
        mcu = self.devices.mcu
        if mcu is None:
            self._status.mcu_changed(True, "simulated")
            await asyncio.Event().wait()
            return
        linked: bool | None = None
        while True:
            now = mcu.linked
            if now != linked:
                if now:
                    info = mcu.client.linked_info
                    firmware = firmware_text(info.fw_version) if info is not None else None
                    self._status.mcu_changed(True, firmware)
                    log.info("MCU linked on %s firmware=%s", mcu.client.url, firmware)
                else:
                    self._status.mcu_changed(False)
                    why = mcu.client.transport_error or "no answer"
                    if linked:
                        log.warning("MCU link lost (%s): hardware commands are refused until it relinks", why)
                        self._live.publish("fault", {"part": "mcu link", "error": f"MCU link lost: {why}"})
                    else:
                        log.info("MCU not linked yet on %s", mcu.client.url)
                linked = now
            await asyncio.sleep(self._link_poll_s)

    async def estop(self) -> None:
        """Follow the e-stop until cancelled."""
        changes = self.devices.estop.changes()  # subscribed now, so nothing between this and the read is lost
        self._status.estop_changed(self.devices.estop.pressed)
        async for pressed in changes:
            self._status.estop_changed(pressed)

    async def card_reader(self) -> None:
        """Hand each tap on: a live "card_tap" (the reader's number, never the UID) and `CardTaps`."""
        async for tap in self.devices.card_reader.taps():
            log.info("card tap reader=%d", tap.reader)
            self._live.publish("card_tap", {"reader": tap.reader})
            self._card_taps.publish(tap)

    async def safe_state(self) -> None:
        """Lights off, then STOP (every actuator safe, which works under the e-stop too); each bounded, each
        failure logged and passed over: the link may be the thing that failed."""
        devices = self.devices
        steps: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] = (
            ("lights.show OFF", partial(devices.lights.show, LightPattern.OFF, 0, 0, 0, 1)),
            ("drive.stop", devices.drive.stop),
        )
        for name, step in steps:
            try:
                async with asyncio.timeout(SAFE_STATE_S):
                    await step()
            except (HardwareError, TimeoutError) as err:
                log.warning("safe state: %s not done: %s", name, err)
        log.info("devices in their safe state")
