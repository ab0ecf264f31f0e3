"""The sender's ack timeout (RFC 6298's retransmission timeout): round trips set it, timeouts double it."""

from __future__ import annotations

import pytest

from robot_agent.sync.ack_timeout import AckTimeout


def test_it_starts_at_3_s_and_follows_the_round_trips_within_1_and_10_s() -> None:
    timeout = AckTimeout()
    assert timeout.value == 3.0
    timeout.sample(0.1)  # 0.1 + 4 x 0.05 = 0.3: held at the floor
    assert timeout.value == 1.0
    for _ in range(50):
        timeout.sample(0.6)
    assert 0.6 < timeout.value < 1.2
    assert timeout.round_trip_s == pytest.approx(0.6, abs=0.02)
    timeout.sample(30.0)
    assert timeout.value == 10.0


def test_a_timeout_doubles_it_until_the_next_sample() -> None:
    timeout = AckTimeout()
    timeout.sample(0.5)
    steady = timeout.value
    timeout.backoff()
    assert timeout.value == 2 * steady
    for _ in range(5):
        timeout.backoff()
    assert timeout.value == 10.0
    timeout.sample(0.5)
    assert timeout.value < 10.0
    steady = timeout.value
    timeout.backoff()
    timeout.settled()  # acks come again: what the round trips say, without a new sample
    assert timeout.value == steady


def test_bounds_that_make_no_sense_are_refused() -> None:
    with pytest.raises(ValueError, match="ack timeout bounds"):
        AckTimeout(min_s=5.0, max_s=1.0)
