"""The cloud's MQTT link for asyncio code: the one class its services (ingest, down-sync) reach the broker by.

paho runs its network loop in its own thread (`loop_start`); every callback that touches the link's state
hands it to the event loop with `call_soon_threadsafe`, so the inbox, `subscribed` and the publishes waiting
for their PUBACK are touched on the event loop's thread only. What the link does for its service:
- connects as `BrokerLogin` says, MQTT v5, with a kept session (clean_start=False and CLOUD_SESSION_EXPIRY_S):
  what robots publish while the service is away waits in the broker for it;
- subscribes to the service's topics on every connect and checks the SUBACK's reason codes (a refused
  subscription is an ERROR, and `subscribed` stays unset);
- hands every message to one asyncio inbox, in arrival order; with `manual_ack`, the broker gets the
  PUBACK only when the service calls `ack` (ingest: after its commit);
- publishes at QoS 1 and checks the reason code of every PUBACK (paho reports success for a refused one);
- logs its broker connection as the robot's link does (models.link_outage): one WARNING per outage with
  the reason, an INFO when it is back saying how long it was down.

The password is never logged: paho's log lines name flags and client ids only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.sync.broker_files import BROKER_MAX_INFLIGHT
from cloud_sync.sync.broker_login import BrokerLogin
from models.link_outage import (
    KeepsConnectError,
    LinkOutage,
    connect_failed,
    describe,
    disconnected,
    refused,
)
from models.loop_handoff import LoopHandoff

# How long the broker keeps a cloud client's session (its subscriptions, messages handed to it) after it goes.
CLOUD_SESSION_EXPIRY_S: Final = 24 * 3600
# The cloud's clients' reconnect backoff, in seconds (paho doubles the wait from the first to the second).
RECONNECT_MIN_S: Final = 1
RECONNECT_MAX_S: Final = 5


class BrokerClient(KeepsConnectError, mqtt.Client):
    """paho's client, remembering why its last connection attempt failed."""


def paho_client(login: BrokerLogin, *, manual_ack: bool = False) -> BrokerClient:
    """A paho MQTT v5 client for `login`: its credentials, the broker's in-flight window, a 1-5 s reconnect
    backoff. Not connected yet."""
    client = BrokerClient(
        CallbackAPIVersion.VERSION2,
        client_id=login.client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    if login.username is not None:
        client.username_pw_set(login.username, login.password)
    client.max_inflight_messages_set(BROKER_MAX_INFLIGHT)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def connect_properties(session_expiry_s: int) -> Properties:
    """CONNECT properties asking the broker to keep the session `session_expiry_s` after a disconnect."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
    properties.SessionExpiryInterval = session_expiry_s
    return properties


@dataclass(frozen=True)
class Received:
    """A message the broker handed the link; `mid` and `qos` are what `CloudLink.ack` answers."""

    topic: str
    payload: bytes
    retained: bool
    mid: int
    qos: int


class CloudLink:
    """One cloud service's connection to the broker; `async with` it (or `start` and `close`).

    `role` ("ingest", "down-sync") and the service's `logger` name its log lines, as the service's own."""

    def __init__(
        self,
        login: BrokerLogin,
        *,
        role: str,
        logger: logging.Logger,
        subscriptions: Sequence[str],
        manual_ack: bool = False,
    ) -> None:
        self._login = login
        self._host, self._port = login.address
        self._role = role
        self._log = logger
        self._subscriptions = [(topic, 1) for topic in subscriptions]
        client = paho_client(login, manual_ack=manual_ack)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._outage = LinkOutage()  # paho's thread only
        self._subscribe_mid: int | None = None  # paho's thread only

        self._to_loop = LoopHandoff()  # paho's callbacks -> this event loop
        self._inbox: asyncio.Queue[Received] = asyncio.Queue()
        self._pending: dict[int, str] = {}  # mid -> topic of a publish waiting for its PUBACK
        self.subscribed = asyncio.Event()

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}"
        return f"CloudLink(role={self._role!r}, client_id={self._login.client_id!r}, broker={where})"

    # -- lifetime -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; paho retries until the broker answers, and after every drop."""
        self._to_loop.bind("CloudLink")
        properties = connect_properties(CLOUD_SESSION_EXPIRY_S)
        self._client.connect_async(self._host, self._port, clean_start=False, properties=properties)
        self._client.loop_start()

    async def close(self) -> None:
        """Disconnect (the session stays in the broker for CLOUD_SESSION_EXPIRY_S) and stop paho's thread."""
        self._client.disconnect()
        self._client.loop_stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- messages -----------------------------------------------------------------------------------------

    async def receive(self) -> Received:
        """The next message, waiting for one."""
        return await self._inbox.get()

    def receive_nowait(self) -> Received | None:
        """The next message if one is waiting, else None."""
        return None if self._inbox.empty() else self._inbox.get_nowait()

    def ack(self, message: Received) -> None:
        """With `manual_ack`: tell the broker `message` is taken (until then it is the session's to deliver
        again, to this client id)."""
        self._client.ack(message.mid, message.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Publish; False (and a WARNING) if paho did not take it, not connected. A PUBACK that refuses it
        (an ACL's 0x87) is a WARNING when it comes; no service here waits for it (a robot asks again, or
        sends its batch again, when it hears nothing)."""
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._log.warning(
                "%s client=%s %s not sent: %s",
                self._role,
                self._login.client_id,
                topic,
                mqtt.error_string(info.rc),
            )
            return False
        # Registered in the same synchronous step as publish(), so the PUBACK posted by paho's thread
        # (`_acked`, on this loop) cannot be handled before it is here.
        if qos > 0:
            self._pending[info.mid] = topic
        return True

    # -- paho's thread ------------------------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._failed(refused(reason))
            return
        down_s = self._outage.connected()
        if down_s is not None:
            self._log.info(
                "%s client=%s back on the broker at %s:%d after %.1f s down",
                self._role,
                self._login.client_id,
                self._host,
                self._port,
                down_s,
            )
        _, self._subscribe_mid = client.subscribe(self._subscriptions)
        self._log.info(
            "%s connected, subscribing to %s",
            self._role,
            ", ".join(topic for topic, _ in self._subscriptions),
        )

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        self._failed(connect_failed(client))

    def _failed(self, reason: str) -> None:
        if not self._outage.failed(reason):
            self._log.debug("%s client=%s still not connected: %s", self._role, self._login.client_id, reason)
            return
        self._log.warning(
            "%s client=%s cannot connect to the broker at %s:%d: %s (retrying every %d-%d s)",
            self._role,
            self._login.client_id,
            self._host,
            self._port,
            reason,
            RECONNECT_MIN_S,
            RECONNECT_MAX_S,
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refusals = [
            f"{topic}: {describe(reason)}"
            for (topic, _), reason in zip(self._subscriptions, reasons, strict=True)
            if reason.is_failure
        ]
        if refusals:
            # Nothing will come on those topics: say so loudly, and do not report the link subscribed.
            self._log.error(
                "%s client=%s broker refused the subscription: %s",
                self._role,
                self._login.client_id,
                ", ".join(refusals),
            )
            return
        self._to_loop.call(self.subscribed.set)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Any,
    ) -> None:
        why = disconnected(reason, from_server=flags.is_disconnect_packet_from_server)
        if self._outage.dropped():
            self._log.info("%s client=%s %s", self._role, self._login.client_id, why)
        else:  # a refused CONNECT ends this way too, on every attempt; already said once
            self._log.debug("%s client=%s %s", self._role, self._login.client_id, why)
        self._to_loop.call(self._link_lost)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        self._to_loop.call(self._acked, mid, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = Received(
            message.topic, bytes(message.payload), bool(message.retain), message.mid, message.qos
        )
        self._to_loop.call(self._inbox.put_nowait, received)

    # -- the event loop's side ----------------------------------------------------------------------------

    def _link_lost(self) -> None:
        # Publishes waiting for a PUBACK: paho sends them again on the resumed session, or they are gone.
        self._pending.clear()
        self.subscribed.clear()

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        topic = self._pending.pop(mid, None)
        if reason.is_failure:
            self._log.warning(
                "%s client=%s broker refused %s: %s",
                self._role,
                self._login.client_id,
                topic or f"message {mid}",
                describe(reason),
            )
