"""The robot's MQTT link to the fleet broker, for asyncio code: transport only, payloads are opaque bytes.

Built on `broker_link.PahoLink` (paho's network thread bridged to the event loop, shared with the cloud's
link), so all of this object's state (pending publishes, `connected`, the inbox) is touched on the event
loop's thread only.

What the link guarantees, and what it leaves to the outbox (docs/sync.md):
- `publish` resolves only on a PUBACK whose MQTT v5 reason code is a success. A PUBACK is *not* durability:
  the caller deletes nothing on it, it waits for the cloud's `down/ack`.
- A refused PUBACK (an ACL refusal is 0x87, a quota 0x97) raises `LinkError`; paho itself reports success for
  those, which is why the code of every PUBACK is checked here.
- Not connected, or the connection dropped before the PUBACK: `LinkDownError`. The caller keeps the data and
  sends it again after a reconnect. paho may also resend such a message on its own when the session resumes,
  so the cloud can receive it twice; batch and event ids make that harmless.
- `down/#` is subscribed on every connect with a persistent session (clean_start=False and a session
  expiry), so what the cloud sent while the robot was offline arrives when it comes back.
- An outage is logged once: a WARNING with the reason when the broker cannot be reached or refuses the robot
  (again only if the reason changes), not one per reconnect attempt, and an INFO saying how long the link
  was down when it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from broker_link.paho_link import ClientSettings, PahoLink
from models.link_outage import describe
from models.sync_batch import TOPIC_ROOT
from robot_agent.errors import RobotAgentError

log = logging.getLogger(__name__)


# paho's in-flight window. It must stay within the broker's Receive Maximum (Mosquitto's
# max_inflight_messages, 20 by default): paho ignores the value the broker advertises, and beyond it
# Mosquitto refuses or drops messages while paho reports success. 8 is also the sender's limit of batches
# in flight.
MAX_INFLIGHT = 8
# paho's own queue (in flight + waiting) is memory and dies with the process: a killed publisher lost ~32,000
# accepted messages. The outbox is the buffer, so paho holds little more than the in-flight window (plus the
# status message and what paho resends after a reconnect).
MAX_QUEUED = 16
# How long the broker keeps the session (subscriptions and queued down/ messages) while the robot is away.
SESSION_EXPIRY_S = 7 * 24 * 3600
# Reconnect backoff, in seconds. paho types these as int; 1..2 s keeps a robot at most 2 s behind a broker
# that comes back, at the cost of one refused TCP connect every 2 s while it is away.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 2
# How long `close` waits for the broker to take the "offline" status before disconnecting anyway.
CLOSE_TIMEOUT_S = 5.0


def _offline_is_not_an_error(record: logging.LogRecord) -> bool:
    """paho logs "Client is not connected" as an ERROR on every reconnect attempt (every 2 s) while the broker
    is away, which is a robot's normal state on a train; the link logs its own state changes, so this one
    goes to DEBUG."""
    if record.levelno == logging.ERROR and record.getMessage().startswith("Client is not connected"):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return record.levelno >= _PAHO_LOG.getEffectiveLevel()


_PAHO_LOG = logging.getLogger(f"{__name__}.paho")
_PAHO_LOG.addFilter(_offline_is_not_an_error)


class LinkError(RobotAgentError):
    """The broker refused what the link asked for; `reason_code` is the MQTT v5 code when there is one."""

    def __init__(self, message: str, reason_code: int | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class LinkDownError(LinkError):
    """Not connected, or the connection dropped before the broker answered: keep the data, send it later."""


def status_payload(state: str) -> bytes:
    """The body of `up/status`: the state and the robot's wall clock."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"state": state, "at": at}).encode()


class RobotLink(PahoLink):
    """One robot's MQTT v5 connection: status with a last will, QoS 1 publishing under `up/`, `down/` in."""

    def __init__(
        self,
        robot_id: uuid.UUID,
        mqtt_url: str,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        *,
        session_expiry_s: int = SESSION_EXPIRY_S,
    ) -> None:
        parts = urlsplit(mqtt_url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise LinkError(f"expected mqtt://HOST[:PORT], got {mqtt_url!r} (mqtts is not supported yet)")
        self.robot_id = robot_id
        self._host = parts.hostname
        self._port = parts.port or 1883
        self._keepalive_s = keepalive_s
        self._session_expiry_s = session_expiry_s
        self._prefix = f"{TOPIC_ROOT}/{robot_id}/"
        self.status_topic = f"{self._prefix}up/status"
        self._down_prefix = f"{self._prefix}down/"

        settings = ClientSettings(
            client_id=f"robot-{robot_id}",
            username=username,
            password=password,
            max_inflight=MAX_INFLIGHT,
            reconnect_min_s=RECONNECT_MIN_S,
            reconnect_max_s=RECONNECT_MAX_S,
            max_queued=MAX_QUEUED,
        )
        # paho's log lines name flags and client ids, never the password; its callback errors show up here.
        super().__init__(
            self._host, self._port, settings, who=f"robot={robot_id}", logger=log, paho_log=_PAHO_LOG
        )
        self._client.on_pre_connect = self._on_pre_connect
        self._connected = False
        self._connected_event = asyncio.Event()
        self._pending: dict[int, tuple[asyncio.Future[None], str]] = {}
        self._disconnected_event = asyncio.Event()
        self._disconnected_event.set()
        # One inbox per `down/` suffix (ack, changes, ...), made on first use by either side, so a message
        # that arrives before its reader starts waits for it.
        self._inboxes: dict[str, asyncio.Queue[bytes | None]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"RobotLink(robot={self.robot_id}, broker={self._host}:{self._port}, connected={self._connected})"
        )

    # -- lifetime -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; paho retries until the broker answers, and after every drop."""
        self._start_paho("RobotLink", self._session_expiry_s, self._keepalive_s)
        log.info("robot=%s connecting to %s:%d", self.robot_id, self._host, self._port)

    async def close(self) -> None:
        """Say "offline" (retained), disconnect cleanly so the broker drops the will, stop paho's thread."""
        if self._closed:
            return
        if self._connected:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._publish(self.status_topic, status_payload("offline"), retain=True)
            except (LinkError, TimeoutError) as err:
                log.warning(
                    "robot=%s could not publish offline status: %s", self.robot_id, str(err) or "timeout"
                )
        self._closed = True
        if self._to_loop.bound:
            await asyncio.to_thread(self._stop_paho)
        self._link_lost("link closed")
        for inbox in self._inboxes.values():
            inbox.put_nowait(None)
        log.info("robot=%s link closed", self.robot_id)

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the connection and it has not dropped since (as the loop knows)."""
        return self._connected

    async def wait_connected(self) -> None:
        """Wait until the link is connected (at once if it is); bound it with `asyncio.timeout`."""
        await self._connected_event.wait()

    async def wait_disconnected(self) -> None:
        """Wait until the link is not connected (at once if it is not): it dropped, or was closed."""
        await self._disconnected_event.wait()

    # -- publishing ---------------------------------------------------------------------------------------

    async def publish(self, topic_suffix: str, payload: bytes) -> None:
        """Publish under this robot's `up/` with QoS 1; return once the broker has accepted it (PUBACK)."""
        await self._publish(f"{self._prefix}up/{topic_suffix}", payload)

    def publish_volatile(self, topic_suffix: str, payload: bytes) -> None:
        """Publish under `up/` at QoS 0 (telemetry): sent now or never, as paho does not queue QoS 0;
        LinkDownError if the link is down."""
        topic = f"{self._prefix}up/{topic_suffix}"
        if self._closed or not self._connected:
            raise LinkDownError(f"not connected: {topic} not sent")
        info = self._client.publish(topic, payload, qos=0)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkDownError(f"{topic} not sent ({mqtt.error_string(info.rc)})")

    async def publish_topic(self, topic: str, payload: bytes) -> None:
        """Publish on any full topic with QoS 1. For tests and tools (e.g. to see the ACL refuse a topic);
        the agent uses `publish`."""
        await self._publish(topic, payload)

    async def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self._closed or not self._connected:
            raise LinkDownError(f"not connected: {topic} not sent")
        loop = asyncio.get_running_loop()
        # The race: paho may read the PUBACK and call on_publish on its thread before publish() returns the
        # mid here. A lock of ours cannot settle it: on_publish runs under paho's _out_message_mutex, which
        # publish() takes too, so holding our lock around publish() against on_publish would deadlock.
        # Instead on_publish only posts (mid, reason) to this event loop, and the future is registered in the
        # same synchronous step as publish() (no await in between), so the posted callback cannot run before
        # the mid is in `_pending`. publish() may block briefly on paho's mutex; paho holds it only for
        # bookkeeping, never for I/O waits.
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise LinkError(f"paho's queue is full ({MAX_QUEUED} messages): {topic} not sent")
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # paho keeps the message and may still send it after a reconnect: at least once, as documented.
            raise LinkDownError(f"not connected ({mqtt.error_string(info.rc)}): {topic} not sent")
        future: asyncio.Future[None] = loop.create_future()
        self._pending[info.mid] = (future, topic)
        try:
            await future
        finally:
            self._pending.pop(info.mid, None)

    # -- receiving ----------------------------------------------------------------------------------------

    async def messages(self, suffix: str) -> AsyncIterator[bytes]:
        """The payload of every message the cloud sends on `down/{suffix}`; ends when the link closes.
        One reader per suffix.

        paho acknowledges a message once it is in this inbox, before the caller has applied it; down-sync
        does not rely on that ack (the robot asks again from its own cursor on every connect)."""
        inbox = self._inbox(suffix)
        while not (self._closed and inbox.empty()):
            item = await inbox.get()
            if item is None:
                return
            yield item

    def _inbox(self, suffix: str) -> asyncio.Queue[bytes | None]:
        if suffix not in self._inboxes:
            self._inboxes[suffix] = asyncio.Queue()
        return self._inboxes[suffix]

    def _received(self, suffix: str, payload: bytes) -> None:
        self._inbox(suffix).put_nowait(payload)

    # -- paho's thread: hand everything to the event loop -------------------------------------------------

    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        # Set before every CONNECT (paho reads it when building the packet): "at" is this connection's start.
        client.will_set(self.status_topic, status_payload("offline"), qos=1, retain=True)

    def _accepted(self, client: mqtt.Client, flags: mqtt.ConnectFlags, down_s: float | None) -> None:
        # Queued before the link reports itself connected, so "online" precedes anything the agent publishes.
        # The link counts as connected at the SUBACK: from then on no down/ message can miss it, even when
        # the broker had lost the session (a crash before its autosave).
        self._subscribe(client, [(f"{self._down_prefix}#", 1)])
        client.publish(self.status_topic, status_payload("online"), qos=1, retain=True)
        if down_s is not None:
            log.info(
                "robot=%s link back after %.1f s down (session present: %s)",
                self.robot_id,
                down_s,
                flags.session_present,
            )
        else:
            log.info("robot=%s connected (session present: %s)", self.robot_id, flags.session_present)

    def _subscribed(self, reasons: list[ReasonCode]) -> None:
        refused_codes = [describe(reason) for reason in reasons if reason.is_failure]
        if refused_codes:
            # Publishing still works; say loudly that nothing will come down, but do not hold the link back.
            log.error(
                "robot=%s broker refused the down/ subscription: %s", self.robot_id, ", ".join(refused_codes)
            )
        self._to_loop.call(self._set_connected)

    def _message(self, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        if not topic.startswith(self._down_prefix):
            log.warning("robot=%s message on unexpected topic %s ignored", self.robot_id, topic)
            return
        self._to_loop.call(self._received, topic.removeprefix(self._down_prefix), bytes(message.payload))

    # -- the event loop's side ----------------------------------------------------------------------------

    def _set_connected(self) -> None:
        if self._closed:
            return
        self._connected = True
        self._connected_event.set()
        self._disconnected_event.clear()

    def _link_lost(self, why: str) -> None:
        self._connected = False
        self._connected_event.clear()
        self._disconnected_event.set()
        pending, self._pending = self._pending, {}
        for future, topic in pending.values():
            if not future.done():
                future.set_exception(LinkDownError(f"{why} before the broker acknowledged {topic}"))

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        entry = self._pending.pop(mid, None)
        if entry is None:
            return  # the status message, or one given up on when the link dropped and resent by paho
        future, topic = entry
        if future.done():
            return
        if reason.is_failure:
            future.set_exception(LinkError(f"broker refused {topic}: {describe(reason)}", reason.value))
        else:
            future.set_result(None)
