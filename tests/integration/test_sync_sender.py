"""The sender's rules on a real outbox file, over an in-memory link whose acks and failures the test controls:
batches of at most 500, at most 8 in flight, rows deleted only on `committed`, set aside on `dead_letter`,
sent again after the timeout and after a reconnect. (Over a real broker: the sync fault tests.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from models.sync_batch import Batch, decode_batch
from robot_agent.clock import Clock
from robot_agent.errors import RobotAgentError
from robot_agent.store import outbox
from robot_agent.store.database import open_store
from robot_agent.sync.sender import AckError, Sender, parse_ack
from tests.support.tasks import eventually, stop

ROBOT = uuid.UUID(int=42)
KEY = Ed25519PrivateKey.generate()


class MemoryLink:
    """A link that keeps what is published and lets the test answer, drop, or cut the connection."""

    def __init__(self) -> None:
        self.published: list[Batch] = []
        self._down: asyncio.Queue[bytes] = asyncio.Queue()
        self._up = asyncio.Event()
        self._up.set()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def wait_connected(self) -> None:
        await self._up.wait()

    async def publish(self, topic_suffix: str, payload: bytes) -> None:
        if not self.connected:
            raise ConnectionError("link down")
        assert topic_suffix == "batch"
        self.published.append(decode_batch(payload, ROBOT, KEY.public_key().public_bytes_raw()))

    async def messages(self, suffix: str) -> AsyncIterator[bytes]:
        assert suffix == "ack"
        while True:
            yield await self._down.get()

    def ack(self, batch: uuid.UUID, status: str = "committed", reason: str = "") -> None:
        self._down.put_nowait(json.dumps({"batch": str(batch), "status": status, "reason": reason}).encode())

    def cut(self) -> None:
        self._up.clear()

    def restore(self) -> None:
        self._up.set()


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    return open_store(tmp_path / "robot.db")


def add_events(store: Engine, count: int) -> None:
    clock = Clock()
    with store.begin() as conn:
        for n in range(count):
            outbox.append(conn, "purchase", {"n": n}, clock)


@contextlib.asynccontextmanager
async def running(sender: Sender) -> AsyncIterator[Sender]:
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        await stop(task)


async def test_batches_go_out_in_order_and_leave_only_on_committed(store: Engine) -> None:
    add_events(store, 1_200)
    link = MemoryLink()
    async with running(Sender(store, link, ROBOT, KEY, Clock(), max_in_flight=2)) as sender:
        await eventually(lambda: len(link.published) == 2, "two batches in flight")
        await asyncio.sleep(0.05)
        assert len(link.published) == 2  # no more than the window
        assert [len(b.events) for b in link.published] == [500, 500]
        assert (await sender.backlog()).events == 1_200  # nothing deleted on a PUBACK alone
        for batch in list(link.published):
            link.ack(batch.id)
        await eventually(lambda: len(link.published) == 3, "the third batch")
        link.ack(link.published[2].id)
        await eventually(lambda: sender.acked_batches == 3, "three acks")
        assert (await sender.backlog()).events == 0
    seqs = [e.seq for b in link.published for e in b.events]
    assert seqs == list(range(1, 1_201))


async def test_a_dead_lettered_batch_is_set_aside_and_the_rest_goes_on(store: Engine) -> None:
    add_events(store, 10)
    link = MemoryLink()
    async with running(Sender(store, link, ROBOT, KEY, Clock(), batch_events=5)) as sender:
        await eventually(lambda: len(link.published) == 2, "two batches")
        link.ack(link.published[0].id, "dead_letter", "malformed: event 0 data")
        link.ack(link.published[1].id)
        await eventually(lambda: sender.acked_batches == 2, "both settled")
        assert (await sender.backlog()).events == 0
    with store.begin() as conn:
        rows = conn.execute(text("SELECT seq, reason FROM rejected_events ORDER BY seq")).all()
    assert [tuple(r) for r in rows] == [(n, "malformed: event 0 data") for n in range(1, 6)]


async def test_no_ack_means_the_same_batch_again_and_so_does_a_reconnect(store: Engine) -> None:
    add_events(store, 3)
    link = MemoryLink()
    async with running(Sender(store, link, ROBOT, KEY, Clock(), ack_timeout_s=0.2)) as sender:
        await eventually(lambda: len(link.published) == 2, "a resend after the timeout")
        first, again = link.published[0], link.published[1]
        assert (again.id, again.events) == (first.id, first.events)  # only its "sent" time is new
        assert sender.resent_batches >= 1
        link.cut()
        await asyncio.sleep(0.05)
        link.restore()
        await eventually(lambda: len(link.published) >= 3, "a resend after the reconnect")
        assert link.published[-1].id == link.published[0].id
        link.ack(link.published[0].id)
        await eventually(lambda: sender.acked_batches == 1, "the ack")
        assert (await sender.backlog()).events == 0


async def test_a_late_ack_means_probing_with_the_oldest_batch_until_an_ack_sends_the_rest_again(
    store: Engine,
) -> None:
    """Issue 13, item 7: while no ack comes (ingest away, the broker dropping batches) only the oldest batch
    is sent again, and nothing new; the first ack proves ingest is back and everything in flight goes again
    at once instead of each batch waiting out its own timeout."""
    add_events(store, 40)
    link = MemoryLink()
    sender = Sender(store, link, ROBOT, KEY, Clock(), batch_events=5, max_in_flight=4, ack_timeout_s=0.3)
    async with running(sender):
        await eventually(lambda: len(link.published) == 4, "a full window")
        window = [b.id for b in link.published]
        await eventually(lambda: len(link.published) >= 7, "three probes", 10)
        assert sender.probing
        assert [b.id for b in link.published[4:]] == [window[0]] * (len(link.published) - 4)
        sent = len(link.published)
        link.ack(window[1])  # any ack, even of a batch that is not the probe
        await eventually(lambda: len(link.published) >= sent + 3, "the window again")
        assert [b.id for b in link.published[sent : sent + 3]] == [window[0], window[2], window[3]]
        assert not sender.probing
        await eventually(lambda: window[3] != link.published[-1].id, "new batches again")


def test_bad_acks_are_named() -> None:
    with pytest.raises(ValueError, match="not an ack"):
        parse_ack(b"{}")
    with pytest.raises(ValueError, match="ack status 'maybe'"):
        parse_ack(json.dumps({"batch": str(uuid.uuid4()), "status": "maybe"}).encode())


def test_an_ack_whose_batch_is_not_text_is_named_not_raised() -> None:
    # Before the typed ack, uuid.UUID(5) raised AttributeError out of parse_ack, past the sender's
    # `except AckError`, and ended the sender's task group.
    with pytest.raises(AckError, match="not an ack: batch 5 is not a UUID"):
        parse_ack(json.dumps({"batch": 5, "status": "committed"}).encode())
    assert issubclass(AckError, RobotAgentError)
