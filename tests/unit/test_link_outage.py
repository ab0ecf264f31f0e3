"""The once-per-outage rule every MQTT client of the fleet logs by (models.link_outage), with a fake clock."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from models.link_outage import LinkOutage, describe, disconnected, refused, unreachable


@dataclass
class Code:
    """A reason code as paho gives it: a value and a name."""

    value: int
    name: str

    def getName(self) -> str:  # paho's name
        return self.name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_news_once_per_reason_and_its_end_says_how_long_it_lasted() -> None:
    clock = Clock()
    outage = LinkOutage(clock)
    assert outage.failed("connection refused")
    clock.now += 3
    assert not outage.failed("connection refused")
    assert outage.failed("refused the connection: not authorized (0x87)")  # the reason changed
    assert not outage.failed("refused the connection: not authorized (0x87)")
    clock.now += 4
    assert outage.connected() == 7.0
    assert not outage.down


def test_a_first_connection_with_no_failure_before_it_is_not_a_return() -> None:
    outage = LinkOutage(Clock())
    assert outage.down
    assert not outage.dropped()  # an attempt that never connected
    assert outage.connected() is None


def test_a_drop_is_news_once_and_starts_an_outage_that_warns_again() -> None:
    clock = Clock()
    outage = LinkOutage(clock)
    assert outage.failed("connection refused")
    outage.connected()
    clock.now += 10
    assert outage.dropped()
    assert not outage.dropped()
    assert outage.failed("connection refused")  # said in the last outage; this is a new one
    clock.now += 2
    assert outage.connected() == 2.0


def test_reasons_read_as_a_person_reads_them() -> None:
    assert unreachable(ConnectionRefusedError()) == "connection refused (no broker listening)"
    assert unreachable(TimeoutError()) == "timed out connecting"
    assert unreachable(socket.gaierror(-2, "Name or service not known")) == (
        "cannot resolve the host name: Name or service not known"
    )
    assert unreachable(OSError(113, "No route to host")) == "unreachable: No route to host"
    assert describe(Code(0x87, "Not authorized")) == "not authorized (0x87)"
    assert refused(Code(0x86, "Bad user name or password")) == (
        "refused the connection: bad user name or password (0x86)"
    )
    assert disconnected(Code(0x80, "Unspecified error"), from_server=False) == "connection lost"
    assert disconnected(Code(0x00, "Success"), from_server=False) == "disconnected"
    assert disconnected(Code(0x8B, "Server shutting down"), from_server=True) == (
        "broker disconnected: server shutting down (0x8b)"
    )
