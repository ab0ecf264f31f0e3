"""Reliable delivery for one direction of the link (PROTOCOL.md §3.1): numbering, window, retransmission,
and the receiving side's in-order, exactly-once acceptance. Pure code: time comes in as `now` (seconds).

Both ends use these: the host for its commands and the events it takes, the MCU (and its simulator) for its
events and the commands it takes.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final

WINDOW: Final = 4
RTO_S: Final = 0.100  # before the first round trip is measured
MIN_RTO_S: Final = 0.020
MAX_RTO_S: Final = 0.200
MAX_ROUNDS: Final = 10
FAST_RESEND_GAP_S: Final = 0.002


def next_seq(seq: int) -> int:
    """The reliable seq after `seq`: 1, 2, ..., 255, 1, ... (0 marks unsequenced frames)."""
    return seq % 255 + 1


@dataclass
class Outgoing:
    """A reliable message in flight: its seq, type and payload, and when it was last sent."""

    seq: int
    type: int
    payload: bytes
    serial: int  # counts every message, never wraps: the window is measured in it
    sent_at: float | None = None
    first_sent_at: float | None = None
    resent: bool = False  # a message sent again gives no round-trip sample (Karn's rule)


class LinkDown(Exception):
    """`MAX_ROUNDS` retransmissions went by without progress."""


class Sender:
    """Numbers reliable messages, keeps at most `window` in flight, and says what to (re)send when.

    `queue` a message; `due(now)` returns those to put on the wire now: new ones while the window has room,
    and every one in flight again (in order, go-back-N) once the oldest has waited the retransmission
    timeout. `acknowledge(seq, now)` (cumulative) or `complete(seq, now)` (one message, e.g. on its reply)
    take messages out of flight.

    The timeout follows the measured round trips as TCP's does (RFC 6298: smoothed RTT plus four times its
    variation), kept between `min_rto` and `max_rto`: on a pty a lost frame costs 20 ms instead of a fixed
    100, on a slow line it stays safe. Unlike TCP it does not double after a loss: a serial line loses
    frames to noise, not to congestion, and backing off only slowed delivery (measured: events queued up
    and overflowed at 20 a second through 1% flips and 0.5% drops).
    """

    def __init__(
        self,
        window: int = WINDOW,
        rto: float = RTO_S,
        max_rounds: int = MAX_ROUNDS,
        min_rto: float = MIN_RTO_S,
        max_rto: float = MAX_RTO_S,
    ) -> None:
        self._window = window
        self._min_rto, self._max_rto = min_rto, max_rto
        self.rto = min(max(rto, min_rto), max_rto)
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._max_rounds = max_rounds
        self._next = 1
        self._serial = 0
        self._waiting: deque[Outgoing] = deque()
        self._in_flight: list[Outgoing] = []
        self._rounds = 0  # retransmission rounds since the last progress
        self.retransmitted = 0

    def queue(self, type_: int, payload: bytes) -> int:
        """Queue a message; returns the seq it will carry."""
        message = Outgoing(self._next, type_, payload, self._serial)
        self._next = next_seq(self._next)
        self._serial += 1
        self._waiting.append(message)
        return message.seq

    @property
    def pending(self) -> int:
        """Messages queued or in flight."""
        return len(self._waiting) + len(self._in_flight)

    def due(self, now: float) -> list[Outgoing]:
        """What to send now; raises `LinkDown` after `max_rounds` retransmissions without progress."""
        out: list[Outgoing] = []
        oldest = self._in_flight[0].sent_at if self._in_flight else None
        if oldest is not None and now - oldest >= self.rto:
            out.extend(self._resend(now))
        while self._waiting and self._fits(self._waiting[0]):
            message = self._waiting.popleft()
            message.sent_at = message.first_sent_at = now
            self._in_flight.append(message)
            out.append(message)
        return out

    def resend_now(self, now: float) -> list[Outgoing]:
        """Everything in flight, again, without waiting for the timeout: a damaged frame was thrown away on
        one side or the other (PROTOCOL.md §3.1), and it may have been ours or its answer. Not again within
        2 ms of a resend, so a burst of noise costs one; counted as a round, so noise alone still ends in
        `LinkDown`. A resend whose original was fine costs only a duplicate, which the other side answers
        from its cache or acknowledges again."""
        if not self._in_flight:
            return []
        oldest = self._in_flight[0]
        if oldest.resent and oldest.sent_at is not None and now - oldest.sent_at < FAST_RESEND_GAP_S:
            return []
        return self._resend(now)

    def _resend(self, now: float) -> list[Outgoing]:
        self._rounds += 1
        if self._rounds > self._max_rounds:
            raise LinkDown(f"no acknowledgement after {self._max_rounds} retransmissions")
        for message in self._in_flight:
            message.sent_at = now
            message.resent = True
        self.retransmitted += len(self._in_flight)
        return list(self._in_flight)

    def _fits(self, message: Outgoing) -> bool:
        # The window spans seqs from the oldest still in flight, not a count: with replies completing out of
        # order, a count would let the oldest fall out of the receiver's memory of recent seqs, and its
        # retransmission would never be recognised again.
        return not self._in_flight or message.serial - self._in_flight[0].serial < self._window

    def next_deadline(self) -> float | None:
        """When `due` will next have something to retransmit (None: nothing in flight)."""
        if not self._in_flight or self._in_flight[0].sent_at is None:
            return None
        return self._in_flight[0].sent_at + self.rto

    def acknowledge(self, ack: int, now: float) -> list[Outgoing]:
        """The other side took every seq up to `ack`: those in flight up to it are done (returned)."""
        for index, message in enumerate(self._in_flight):
            if message.seq == ack:
                done, self._in_flight = self._in_flight[: index + 1], self._in_flight[index + 1 :]
                self._done(message, now)
                return done
        return []

    def complete(self, seq: int, now: float) -> Outgoing | None:
        """`seq` alone is done (its reply came). Earlier ones stay in flight until their own replies: sent
        again, the other side answers them from its cache, so no result is lost with a lost reply."""
        for index, message in enumerate(self._in_flight):
            if message.seq == seq:
                del self._in_flight[index]
                self._done(message, now)
                return message
        return None

    def _done(self, message: Outgoing, now: float) -> None:
        self._rounds = 0
        if message.resent or message.first_sent_at is None:
            return
        sample = now - message.first_sent_at
        if self._srtt is None:
            self._srtt, self._rttvar = sample, sample / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - sample)
            self._srtt = 0.875 * self._srtt + 0.125 * sample
        self.rto = min(max(self._srtt + 4 * self._rttvar, self._min_rto), self._max_rto)

    def reset(self) -> list[Outgoing]:
        """Start numbering at 1 again (a new handshake); returns what was queued or in flight, now dropped."""
        dropped = [*self._in_flight, *self._waiting]
        self._in_flight, self._waiting = [], deque()
        self._next = 1
        self._rounds = 0
        return dropped


class Take(enum.Enum):
    NEW = "new"  # deliver it, ack it
    DUPLICATE = "duplicate"  # seen already: ack again, do not deliver
    OUT_OF_ORDER = "out_of_order"  # drop it; the sender sends it again in order


class Receiver:
    """Takes the other side's reliable frames in order, each once; `last` is what to put in `ack`."""

    def __init__(self, window: int = WINDOW) -> None:
        self._window = window
        self.last = 0
        self._recent: deque[int] = deque(maxlen=window)

    def take(self, seq: int) -> Take:
        if seq == next_seq(self.last):
            self.last = seq
            self._recent.append(seq)
            return Take.NEW
        if seq in self._recent:
            return Take.DUPLICATE
        return Take.OUT_OF_ORDER

    def reset(self) -> None:
        self.last = 0
        self._recent.clear()
