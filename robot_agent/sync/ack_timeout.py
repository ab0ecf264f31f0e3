"""How long the sender waits for a batch's ack before it counts the batch as lost: RFC 6298's retransmission
timeout, applied to batches and the cloud's `down/ack`.

The timeout follows the acks' round trips (publish to `down/ack`, ingest's commit included): the smoothed
round trip plus four times its variation, between `min_s` and `max_s`. Only a batch sent once gives a
sample (Karn's rule: an ack of a batch sent twice cannot say which copy it answers). A timeout doubles it, up
to `max_s`; the next sample, or acks coming again (`settled`), sets it from the round trips again. Pure:
fed samples, read by the sender.
"""

from __future__ import annotations

from typing import Final

MIN_S: Final = 1.0
MAX_S: Final = 10.0
# Before the first ack: RFC 2988's 3 s, not RFC 6298's 1 s; a robot starting with a backlog sends a full
# window at once, and a first ack within a second is not to be counted on.
INITIAL_S: Final = 3.0


class AckTimeout:
    """The current ack timeout of one sender: `value`, updated by `sample` and `backoff`."""

    def __init__(self, *, initial_s: float = INITIAL_S, min_s: float = MIN_S, max_s: float = MAX_S) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"ack timeout bounds {min_s}..{max_s} s")
        self.min_s, self.max_s = min_s, max_s
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._value = self._bounded(initial_s)

    @property
    def value(self) -> float:
        """Seconds to wait for an ack before counting a batch as lost."""
        return self._value

    @property
    def round_trip_s(self) -> float | None:
        """The smoothed round trip, None before the first sample."""
        return self._srtt

    def sample(self, rtt_s: float) -> None:
        """A batch sent once was acked `rtt_s` after it was sent."""
        if self._srtt is None:
            self._srtt, self._rttvar = rtt_s, rtt_s / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt_s)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt_s
        self._value = self._bounded(self._srtt + 4 * self._rttvar)

    def settled(self) -> None:
        """Acks come again (after a timeout): back to what the round trips say, without waiting for a sample
        from a batch sent once, which may not come soon (the backlog may be empty)."""
        if self._srtt is not None:
            self._value = self._bounded(self._srtt + 4 * self._rttvar)

    def backoff(self) -> None:
        """A batch was not acked in time: wait twice as long from now on, until the next sample."""
        self._value = self._bounded(2 * self._value)

    def _bounded(self, seconds: float) -> float:
        return min(self.max_s, max(self.min_s, seconds))
