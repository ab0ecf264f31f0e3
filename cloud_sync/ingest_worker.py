"""The ingest worker: takes robots' batches from the broker, has `Ingest` apply them, publishes the acks.

It moves bytes only (docs/sync.md). It subscribes through the shared subscription `$share/ingest/...`, so
several workers split the fleet's load; it keeps its MQTT session (messages that arrive while it is down wait
in the broker), and it acknowledges each message to the broker (manual PUBACK) only after the batch is
committed and its ack published: a worker killed mid-batch leaves the message to be delivered again, and
ingest's event ids make that harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.errors import CloudSyncError
from cloud_sync.ingest import Ingest, robot_of
from models.sync_batch import TOPIC_ROOT

log = logging.getLogger(__name__)

SUBSCRIPTION: Final = f"$share/ingest/{TOPIC_ROOT}/+/up/batch"
SESSION_EXPIRY_S: Final = 24 * 3600
MAX_INFLIGHT: Final = 20  # the generated broker config's max_inflight_messages


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise CloudSyncError(f"not an MQTT URL: {url!r} (mqtt://HOST[:PORT])")
    return parts.hostname, parts.port or 1883


class IngestWorker:
    """One ingest worker on one broker connection; `run()` until cancelled."""

    def __init__(
        self, ingest: Ingest, mqtt_url: str, username: str | None, password: str | None, client_id: str
    ) -> None:
        """`client_id` must stay the same across restarts of one worker: its session in the broker holds the
        messages handed to it and not yet acknowledged, and only a worker with that id gets them."""
        self._ingest = ingest
        self._host, self._port = _address(mqtt_url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.reconnect_delay_set(1, 5)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.subscribed = asyncio.Event()
        self.handled = 0

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(self._host, self._port, clean_start=False, properties=properties)
        self._client.loop_start()
        try:
            while True:
                message = await self._queue.get()
                await self._handle(message)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    async def _handle(self, message: mqtt.MQTTMessage) -> None:
        try:
            ack = await self._ingest.handle(message.topic, bytes(message.payload))
        except Exception:
            # The database is away (or worse): leave the message unacknowledged to the broker, so that it
            # comes again, and do not lose the worker.
            log.exception("batch not applied topic=%s", message.topic)
            await asyncio.sleep(1.0)
            return
        if ack is not None:
            robot = robot_of(message.topic)
            info = self._client.publish(f"{TOPIC_ROOT}/{robot}/down/ack", _json(ack), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning("ack not sent robot=%s: %s", robot, mqtt.error_string(info.rc))
        self._client.ack(message.mid, message.qos)
        self.handled += 1

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused ingest: %s", reason)
            return
        client.subscribe(SUBSCRIPTION, qos=1)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.subscribed.set)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, message)


def _json(ack: dict[str, Any]) -> bytes:
    return json.dumps(ack, separators=(",", ":")).encode()
