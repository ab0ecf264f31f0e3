"""The cloud's MQTT link for asyncio code: the one class its services (ingest, down-sync) reach the broker by.

Built on `broker_link.PahoLink` (paho's thread bridged to the event loop, shared with the robot's link), so
the inbox, `subscribed` and the publishes waiting for their PUBACK are touched on the event loop's thread
only. What the link does for its service:
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
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from broker_link.paho_link import BrokerClient, ClientSettings, PahoLink, broker_client
from cloud_sync.sync.broker_files import BROKER_MAX_INFLIGHT
from cloud_sync.sync.broker_login import BrokerLogin
from models.link_outage import describe

# How long the broker keeps a cloud client's session (its subscriptions, messages handed to it) after it goes.
CLOUD_SESSION_EXPIRY_S: Final = 24 * 3600
# The cloud's clients' reconnect backoff, in seconds (paho doubles the wait from the first to the second).
RECONNECT_MIN_S: Final = 1
RECONNECT_MAX_S: Final = 5


def client_settings(login: BrokerLogin, *, manual_ack: bool = False) -> ClientSettings:
    """How a cloud client connects as `login`: the broker's in-flight window, a 1-5 s reconnect backoff."""
    return ClientSettings(
        client_id=login.client_id,
        username=login.username,
        password=login.password,
        max_inflight=BROKER_MAX_INFLIGHT,
        reconnect_min_s=RECONNECT_MIN_S,
        reconnect_max_s=RECONNECT_MAX_S,
        manual_ack=manual_ack,
    )


def paho_client(login: BrokerLogin) -> BrokerClient:
    """A paho MQTT v5 client for `login`, not connected yet (for a one-off blocking connection)."""
    return broker_client(client_settings(login))


@dataclass(frozen=True)
class Received:
    """A message the broker handed the link; `mid` and `qos` are what `CloudLink.ack` answers."""

    topic: str
    payload: bytes
    retained: bool
    mid: int
    qos: int


class CloudLink(PahoLink):
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
        host, port = login.address
        super().__init__(
            host,
            port,
            client_settings(login, manual_ack=manual_ack),
            who=f"{role} client={login.client_id}",
            logger=logger,
        )
        self._login = login
        self._role = role
        self._subscriptions = [(topic, 1) for topic in subscriptions]
        self._inbox: asyncio.Queue[Received] = asyncio.Queue()
        self._pending: dict[int, str] = {}  # mid -> topic of a publish waiting for its PUBACK
        self.subscribed = asyncio.Event()

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}"
        return f"CloudLink(role={self._role!r}, client_id={self._login.client_id!r}, broker={where})"

    # -- lifetime -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; paho retries until the broker answers, and after every drop."""
        self._start_paho("CloudLink", CLOUD_SESSION_EXPIRY_S)

    async def close(self) -> None:
        """Disconnect (the session stays in the broker for CLOUD_SESSION_EXPIRY_S) and stop paho's thread."""
        self._stop_paho()

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
            self._log.warning("%s %s not sent: %s", self._who, topic, mqtt.error_string(info.rc))
            return False
        # Registered in the same synchronous step as publish(), so the PUBACK posted by paho's thread
        # (`_acked`, on this loop) cannot be handled before it is here.
        if qos > 0:
            self._pending[info.mid] = topic
        return True

    # -- paho's thread ------------------------------------------------------------------------------------

    def _accepted(self, client: mqtt.Client, _flags: mqtt.ConnectFlags, down_s: float | None) -> None:
        if down_s is not None:
            self._log.info(
                "%s back on the broker at %s:%d after %.1f s down", self._who, self._host, self._port, down_s
            )
        self._subscribe(client, self._subscriptions)
        self._log.info(
            "%s connected, subscribing to %s",
            self._role,
            ", ".join(topic for topic, _ in self._subscriptions),
        )

    def _subscribed(self, reasons: list[ReasonCode]) -> None:
        refusals = [
            f"{topic}: {describe(reason)}"
            for (topic, _), reason in zip(self._subscriptions, reasons, strict=True)
            if reason.is_failure
        ]
        if refusals:
            # Nothing will come on those topics: say so loudly, and do not report the link subscribed.
            self._log.error("%s broker refused the subscription: %s", self._who, ", ".join(refusals))
            return
        self._to_loop.call(self.subscribed.set)

    def _message(self, message: mqtt.MQTTMessage) -> None:
        received = Received(
            message.topic, bytes(message.payload), bool(message.retain), message.mid, message.qos
        )
        self._to_loop.call(self._inbox.put_nowait, received)

    # -- the event loop's side ----------------------------------------------------------------------------

    def _link_lost(self, _why: str) -> None:
        # Publishes waiting for a PUBACK: paho sends them again on the resumed session, or they are gone.
        self._pending.clear()
        self.subscribed.clear()

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        topic = self._pending.pop(mid, None)
        if reason.is_failure:
            self._log.warning(
                "%s broker refused %s: %s", self._who, topic or f"message {mid}", describe(reason)
            )
