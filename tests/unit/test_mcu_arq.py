"""Reliable delivery over a lossy line: numbering, window, retransmission, exactly-once in-order taking."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.arq import WINDOW, LinkDown, Receiver, Sender, Take, next_seq


def test_sequence_numbers_wrap_past_255_and_skip_0() -> None:
    assert [next_seq(s) for s in (0, 1, 254, 255)] == [1, 2, 255, 1]
    sender = Sender(window=300)
    seqs = [sender.queue(1, b"") for _ in range(300)]
    assert seqs[:2] == [1, 2]
    assert seqs[254:257] == [255, 1, 2]
    assert 0 not in seqs


def test_at_most_a_window_is_in_flight() -> None:
    sender = Sender()
    for n in range(6):
        sender.queue(0x10, bytes((n,)))
    assert [m.seq for m in sender.due(0.0)] == [1, 2, 3, 4]
    assert sender.due(0.01) == []
    assert [m.seq for m in sender.acknowledge(2, 0.01)] == [1, 2]
    assert [m.seq for m in sender.due(0.02)] == [5, 6]
    assert sender.pending == 4


def test_the_oldest_waiting_an_rto_sends_everything_in_flight_again_in_order() -> None:
    sender = Sender(rto=0.1, min_rto=0.1, max_rto=0.1)
    for _ in range(3):
        sender.queue(0x10, b"")
    sender.due(0.0)
    assert sender.next_deadline() == pytest.approx(0.1)
    assert sender.due(0.05) == []
    assert [m.seq for m in sender.due(0.1)] == [1, 2, 3]
    assert sender.retransmitted == 3


def test_the_link_is_down_after_the_last_round_without_progress() -> None:
    sender = Sender(rto=1.0, max_rounds=3, min_rto=1.0, max_rto=1.0)
    sender.queue(0x10, b"")
    sender.due(0.0)
    for round_ in range(1, 4):
        assert [m.seq for m in sender.due(float(round_))] == [1]
    with pytest.raises(LinkDown, match="after 3 retransmissions"):
        sender.due(4.0)


def test_progress_restarts_the_count_of_rounds() -> None:
    sender = Sender(rto=1.0, max_rounds=2, min_rto=1.0, max_rto=1.0)
    sender.queue(0x10, b"")
    sender.queue(0x10, b"")
    sender.due(0.0)
    sender.due(1.0)
    sender.due(2.0)
    sender.complete(1, 2.5)
    sender.due(3.0)
    sender.due(4.0)  # two rounds for seq 2 alone: still up
    with pytest.raises(LinkDown):
        sender.due(5.0)


def test_a_reply_completes_only_its_own_command() -> None:
    sender = Sender()
    for _ in range(6):
        sender.queue(0x10, b"")
    sender.due(0.0)
    assert sender.complete(2, 0.005) is not None
    assert sender.complete(2, 0.006) is None
    # 1, 3 and 4 wait for their own replies, and 5 may not go before 1 is done: the window starts at 1.
    assert sender.due(0.01) == []
    sender.complete(1, 0.015)
    assert [m.seq for m in sender.due(0.02)] == [5, 6]  # the window now starts at 3


def test_the_receiver_takes_in_order_once() -> None:
    receiver = Receiver()
    assert [receiver.take(s) for s in (1, 2, 2, 4, 3, 1)] == [
        Take.NEW,
        Take.NEW,
        Take.DUPLICATE,
        Take.OUT_OF_ORDER,
        Take.NEW,
        Take.DUPLICATE,
    ]
    assert receiver.last == 3
    for seq in range(4, 256):
        assert receiver.take(seq) is Take.NEW
    assert receiver.take(1) is Take.NEW  # wrapped
    assert receiver.take(252) is Take.OUT_OF_ORDER  # beyond the window of recent ones: not a duplicate
    assert receiver.take(254) is Take.DUPLICATE


def simulate(
    seed: int, loss: float, messages: int, with_replies: bool
) -> tuple[list[bytes], list[bytes], int]:
    """Messages from a sender to a receiver over a line losing `loss` of the frames each way. Returns the
    payloads sent, those the receiving side executed (taken as NEW), and the retransmissions.

    With replies (commands): the receiver answers each frame with a reply for its seq, from a cache for a
    duplicate, and the sender completes a command only on its reply. Without (events): the receiver's
    cumulative ack is what comes back.
    """
    rng = random.Random(seed)
    sender, receiver = Sender(max_rounds=1_000), Receiver()
    sent = [rng.randbytes(4) for _ in range(messages)]
    for payload in sent:
        sender.queue(0x10, payload)
    executed: list[bytes] = []
    replies: dict[int, bytes] = {}
    now = 0.0
    while sender.pending:
        now += 0.02
        for message in sender.due(now):
            if rng.random() < loss:
                continue
            verdict = receiver.take(message.seq)
            if verdict is Take.NEW:
                executed.append(message.payload)
                replies[message.seq] = message.payload
            if verdict is Take.OUT_OF_ORDER or rng.random() < loss:
                continue  # nothing comes back, or it is lost
            if with_replies:
                sender.complete(message.seq, now)
            else:
                sender.acknowledge(receiver.last, now)
        assert now < 1_000, "the simulation does not converge"
    return sent, executed, sender.retransmitted


@pytest.mark.parametrize("with_replies", [True, False], ids=["commands", "events"])
def test_a_thousand_messages_through_a_lossy_line_arrive_once_in_order(with_replies: bool) -> None:
    sent, executed, retransmitted = simulate(seed=1, loss=0.05, messages=1_000, with_replies=with_replies)
    assert executed == sent
    assert retransmitted > 0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.floats(0.0, 0.5), st.booleans())
def test_no_loss_pattern_loses_or_doubles_a_message(seed: int, loss: float, with_replies: bool) -> None:
    sent, executed, _ = simulate(seed, loss, messages=3 * WINDOW + 1, with_replies=with_replies)
    assert executed == sent


def test_the_timeout_follows_measured_round_trips() -> None:
    sender = Sender(rto=0.1, min_rto=0.02, max_rto=0.2)
    now = 0.0
    for _ in range(20):  # round trips of 1 ms
        seq = sender.queue(0x10, b"")
        sender.due(now)
        now += 0.001
        sender.complete(seq, now)
    assert sender.rto == pytest.approx(0.02)  # at the floor: 1 ms plus its variation is below it
    seq = sender.queue(0x10, b"")
    sender.due(now)
    assert sender.due(now + 0.019) == []
    assert [m.seq for m in sender.due(now + 0.0201)] == [seq]
    # A message that was sent again gives no sample: its reply may answer either copy.
    sender.complete(seq, now + 0.5)
    assert sender.rto == pytest.approx(0.02)
    for _ in range(20):  # round trips of 150 ms
        seq = sender.queue(0x10, b"")
        sender.due(now)
        now += 0.150
        sender.complete(seq, now)
    assert sender.rto == pytest.approx(0.2)  # capped
