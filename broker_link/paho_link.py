"""paho's MQTT v5 client for asyncio code: what the robot's link and the cloud's have in common.

paho runs its network loop in its own thread (`loop_start`). `PahoLink` sets every callback, logs the broker
connection the way both programs do (models.link_outage: one WARNING per outage with its reason, an INFO when
a connection that was up drops, the subclass says "back" with its own identifiers), and hands what concerns
the link's state to the event loop with `LoopHandoff`, so that state is touched on the loop's thread only.

A subclass says what a connection means to it (`_accepted`: subscribe, say "online"), what a SUBACK, a
message, a PUBACK and a lost connection do (`_subscribed`, `_message` on paho's thread; `_acked` and
`_link_lost` on the event loop's).

The password is never logged: paho's log lines name flags and client ids only.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker_link.loop_handoff import LoopHandoff
from models.link_outage import LinkOutage, disconnected, refused, unreachable


class BrokerClient(mqtt.Client):
    """paho's client, remembering why its last connection attempt failed: paho's `on_connect_fail` is told
    nothing, and the reason (refused, unresolvable, unreachable, timed out) is what an engineer needs."""

    connect_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as err:
            self.connect_error = err
            raise


def connect_failed(client: mqtt.Client) -> str:
    """Why a client's last connection attempt failed, for paho's `on_connect_fail`."""
    err = client.connect_error if isinstance(client, BrokerClient) else None
    return unreachable(err) if err is not None else "cannot connect"


@dataclass(frozen=True)
class ClientSettings:
    """How a link's paho client connects: who it is, and the windows and backoff its side needs."""

    client_id: str
    username: str | None
    password: str | None
    # paho's in-flight window; it must stay within the broker's Receive Maximum (paho ignores the value the
    # broker advertises, and beyond it Mosquitto refuses or drops messages while paho reports success).
    max_inflight: int
    # The reconnect backoff, in seconds (paho doubles the wait from the first to the second).
    reconnect_min_s: int
    reconnect_max_s: int
    # paho's own queue (in flight + waiting); 0 leaves it unbounded.
    max_queued: int = 0
    # The broker gets the PUBACK for a message only when the link calls `ack`.
    manual_ack: bool = False


def broker_client(settings: ClientSettings, paho_log: logging.Logger | None = None) -> BrokerClient:
    """A paho MQTT v5 client as `settings` say. Not connected yet."""
    client = BrokerClient(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=settings.manual_ack,
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    client.max_inflight_messages_set(settings.max_inflight)
    if settings.max_queued:
        client.max_queued_messages_set(settings.max_queued)
    client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
    if paho_log is not None:
        client.enable_logger(paho_log)
    return client


def connect_properties(session_expiry_s: int) -> Properties:
    """CONNECT properties asking the broker to keep the session `session_expiry_s` after a disconnect."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
    properties.SessionExpiryInterval = session_expiry_s
    return properties


class PahoLink(ABC):
    """One connection to the broker at `host:port`, with a kept session; `who` ("robot=ID", "ingest
    client=ID") starts each of its log lines, written to `logger`."""

    def __init__(
        self,
        host: str,
        port: int,
        settings: ClientSettings,
        *,
        who: str,
        logger: logging.Logger,
        paho_log: logging.Logger | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._settings = settings
        self._who = who
        self._log = logger
        client = broker_client(settings, paho_log)
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

    @abstractmethod
    async def start(self) -> None:
        """Start connecting (`_start_paho`)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect and stop paho's thread (`_stop_paho`)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _start_paho(self, owner: str, session_expiry_s: int, keepalive_s: int = 60) -> None:
        """Bind to the running loop and start connecting in the background; paho retries until the broker
        answers, and after every drop. The session is resumed (clean_start off) and kept for
        `session_expiry_s` after a disconnect."""
        self._to_loop.bind(owner)
        self._client.connect_async(
            self._host,
            self._port,
            keepalive_s,
            clean_start=False,
            properties=connect_properties(session_expiry_s),
        )
        self._client.loop_start()

    def _stop_paho(self) -> None:
        # loop_stop right behind disconnect: paho's thread then ends once DISCONNECT is written, instead of
        # polling the closed socket once more (which paho logs as an error).
        self._client.disconnect()
        self._client.loop_stop()

    def _subscribe(self, client: mqtt.Client, topics: Sequence[tuple[str, int]]) -> None:
        """Subscribe (from `_accepted`); the SUBACK for this request reaches `_subscribed`."""
        _, self._subscribe_mid = client.subscribe(list(topics))

    # -- what a subclass says -----------------------------------------------------------------------------

    @abstractmethod
    def _accepted(self, client: mqtt.Client, flags: mqtt.ConnectFlags, down_s: float | None) -> None:
        """paho's thread: the broker accepted the connection; `down_s` is how long it was down, None for a
        first connection no failure came before."""

    @abstractmethod
    def _subscribed(self, reasons: list[ReasonCode]) -> None:
        """paho's thread: the SUBACK of `_subscribe`, a reason code per topic."""

    @abstractmethod
    def _message(self, message: mqtt.MQTTMessage) -> None:
        """paho's thread: a message arrived."""

    @abstractmethod
    def _acked(self, mid: int, reason: ReasonCode) -> None:
        """The event loop: the PUBACK of publish `mid`, with its reason code (paho says success for a
        refused one)."""

    @abstractmethod
    def _link_lost(self, why: str) -> None:
        """The event loop: the connection ended (`why`), or an attempt to make one did."""

    # -- paho's thread ------------------------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._failed(refused(reason))
            return
        self._accepted(client, flags, self._outage.connected())

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        self._failed(connect_failed(client))

    def _failed(self, reason: str) -> None:
        """One WARNING per outage and reason, however many reconnect attempts fail the same way."""
        if not self._outage.failed(reason):
            self._log.debug("%s still not connected: %s", self._who, reason)
            return
        self._log.warning(
            "%s cannot connect to the broker at %s:%d: %s (retrying every %d-%d s)",
            self._who,
            self._host,
            self._port,
            reason,
            self._settings.reconnect_min_s,
            self._settings.reconnect_max_s,
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        if mid == self._subscribe_mid:
            self._subscribed(reasons)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Any,
    ) -> None:
        why = disconnected(reason, from_server=flags.is_disconnect_packet_from_server)
        if self._outage.dropped():  # a connection that was up has dropped: the outage starts now
            self._log.info("%s %s", self._who, why)
        else:  # a refused CONNECT ends this way too, on every attempt; already said once
            self._log.debug("%s %s", self._who, why)
        self._to_loop.call(self._link_lost, why)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        self._to_loop.call(self._acked, mid, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._message(message)
