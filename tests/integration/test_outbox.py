"""The robot's outbox on a real SQLite file: same-transaction writes, sequence numbers that never repeat,
batches taken, sent again and acknowledged, and committed events surviving a SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from models.sync_batch import decode_batch, encode_batch, event_data
from robot_agent.clock import Clock
from robot_agent.store import outbox
from robot_agent.store.database import open_store
from robot_agent.store.outbox import OutboxError


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    return open_store(tmp_path / "robot.db")


def test_an_event_commits_or_rolls_back_with_the_change_it_records(store: Engine) -> None:
    clock = Clock()
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE sales (id INTEGER PRIMARY KEY, item TEXT)"))

    def sell_and_fail() -> None:
        with store.begin() as conn:
            conn.execute(text("INSERT INTO sales (item) VALUES ('tea')"))
            outbox.append(conn, "purchase", {"item": "tea"}, clock)
            raise RuntimeError("the purchase failed after both writes")

    with pytest.raises(RuntimeError):
        sell_and_fail()
    with store.begin() as conn:
        assert outbox.backlog(conn, clock).events == 0
        assert conn.execute(text("SELECT count(*) FROM sales")).scalar_one() == 0
        conn.execute(text("INSERT INTO sales (item) VALUES ('cake')"))
        outbox.append(conn, "purchase", {"item": "cake", "user": uuid.UUID(int=7)}, clock)
    with store.begin() as conn:
        batch = outbox.take_batch(conn)
    assert batch is not None
    [event] = batch.events
    assert (event.type, outbox.decode_data(event)) == ("purchase", {"item": "cake", "user": uuid.UUID(int=7)})
    assert event.boot == clock.boot
    assert event.id.version == 7


def test_sequence_numbers_only_grow_even_after_the_outbox_empties(tmp_path: Path) -> None:
    path, clock = tmp_path / "robot.db", Clock()
    store = open_store(path)
    with store.begin() as conn:
        seqs = [outbox.append(conn, "ticket.checked", {"n": n}, clock) for n in range(3)]
        batch = outbox.take_batch(conn)
    assert seqs == [1, 2, 3]
    assert batch is not None
    with store.begin() as conn:
        assert outbox.acknowledge(conn, batch.id) == 3
        assert outbox.backlog(conn, clock).events == 0
    store.dispose()
    reopened = open_store(path)
    with reopened.begin() as conn:
        assert outbox.append(conn, "ticket.checked", {"n": 3}, clock) == 4


def test_batches_are_taken_oldest_first_sent_again_as_they_were_and_acknowledged_once(store: Engine) -> None:
    clock = Clock()
    with store.begin() as conn:
        for n in range(7):
            outbox.append(conn, "purchase", {"n": n}, clock)
        first = outbox.take_batch(conn, limit=3)
        second = outbox.take_batch(conn, limit=3)
        outbox.append(conn, "purchase", {"n": 7}, clock)
    assert first is not None
    assert second is not None
    assert [e.seq for e in first.events] == [1, 2, 3]
    assert [e.seq for e in second.events] == [4, 5, 6]
    with store.begin() as conn:
        # After a reconnect: the same two batches, same ids, same events; the new event is in neither.
        assert outbox.unacknowledged(conn) == [first, second]
        backlog = outbox.backlog(conn, clock)
        assert (backlog.events, backlog.in_flight) == (8, 6)
        assert outbox.acknowledge(conn, second.id) == 3
        assert outbox.acknowledge(conn, second.id) == 0  # the same ack twice changes nothing
        assert outbox.acknowledge(conn, uuid.uuid4()) == 0
        assert outbox.unacknowledged(conn) == [first]
        third = outbox.take_batch(conn)
    assert third is not None
    assert [e.seq for e in third.events] == [7, 8]


def test_bad_events_are_refused_and_write_nothing(store: Engine) -> None:
    clock = Clock()
    with store.begin() as conn:
        with pytest.raises(OutboxError, match="event type 'no spaces'"):
            outbox.append(conn, "no spaces", {}, clock)
        with pytest.raises(OutboxError, match="event purchase: its data cannot be encoded"):
            outbox.append(conn, "purchase", {"when": object()}, clock)
        assert outbox.backlog(conn, clock).events == 0


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from robot_agent.clock import Clock
    from robot_agent.store import outbox
    from robot_agent.store.database import open_store
    store, clock = open_store(Path(sys.argv[1])), Clock()
    while True:
        with store.begin() as conn:
            seq = outbox.append(conn, "purchase", {"item": "tea"}, clock)
        print(seq, flush=True)  # only after the commit returned
    """
)


def test_every_committed_event_survives_a_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "robot.db"
    open_store(path).dispose()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert writer.stdout is not None
    committed = [int(writer.stdout.readline()) for _ in range(300)]
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    # It went on committing while we read: what it reported before the kill is still in the pipe.
    committed += [int(line) for line in writer.stdout.read().split()]
    with open_store(path).begin() as conn:
        stored = [e.seq for b in [outbox.take_batch(conn, limit=100_000)] if b for e in b.events]
    # Every event whose commit returned is there; at most the one being written when the kill came is extra.
    assert stored[: len(committed)] == committed
    assert len(stored) - len(committed) <= 1


def test_a_batch_from_the_outbox_is_what_ingest_decodes(store: Engine) -> None:
    robot, key, clock = uuid.uuid4(), Ed25519PrivateKey.generate(), Clock()
    with store.begin() as conn:
        for n in range(3):
            outbox.append(conn, "purchase", {"n": n}, clock)
        batch = outbox.take_batch(conn)
    assert batch is not None
    signed = encode_batch(robot, batch.id, clock.wall_ms(), batch.events, key)
    decoded = decode_batch(signed, robot, key.public_key().public_bytes_raw())
    assert (decoded.id, decoded.events) == (batch.id, batch.events)
    assert [event_data(e) for e in decoded.events] == [{"n": 0}, {"n": 1}, {"n": 2}]
