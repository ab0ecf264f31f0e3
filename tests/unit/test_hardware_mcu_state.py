"""McuState, sans-IO: events and STATUS merged in order, so a lost event converges and a stale status never
undoes a newer event."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge.host import Event
from firmware_bridge.schema import Fields
from hardware.devices import CardTap, CardUid, CompartmentState, GateState
from hardware.mcu import McuState

BOOT = 0xB007


def event(name: str, seq: int, boot_id: int = BOOT, **fields: int | bytes) -> Event:
    return Event(name, {"event_seq": seq, "uptime_ms": seq * 10, **fields}, boot_id)


def status(last_event_seq: int, *, estop: int = 0, gate: int = 0, boot_id: int = BOOT) -> Fields:
    return {
        "boot_id": boot_id,
        "uptime_ms": 1000,
        "last_event_seq": last_event_seq,
        "gate": gate,
        "estop": estop,
        "outputs": 0,
        "faults": 0,
        "linked": 1,
    }


def test_events_set_the_state() -> None:
    state = McuState()
    state.apply_event(event("GATE_STATE", 1, state=int(GateState.OPENING)))
    state.apply_event(event("COMPARTMENT_STATE", 2, index=5, state=int(CompartmentState.OPEN)))
    state.apply_event(event("ESTOP", 3, pressed=1))
    assert state.gate is GateState.OPENING
    assert state.compartments[5] is CompartmentState.OPEN
    assert state.latch.pressed


async def test_a_card_read_becomes_a_tap() -> None:
    state = McuState()
    state.apply_event(event("CARD_READ", 1, reader=1, uid=bytes.fromhex("04a1b2c3")))
    async with asyncio.timeout(1):
        assert await anext(state.tap_buffer.taps()) == CardTap(1, CardUid(bytes.fromhex("04a1b2c3")))


def test_a_lost_estop_event_converges_through_the_status() -> None:
    state = McuState()
    state.apply_status(status(0))
    state.apply_status(status(1, estop=1))  # event 1 (the press) never arrived
    assert state.latch.pressed
    state.apply_status(status(2, estop=0))
    assert not state.latch.pressed


def test_a_status_older_than_the_last_event_is_ignored() -> None:
    state = McuState()
    state.apply_event(event("ESTOP", 7, pressed=1))
    state.apply_event(event("GATE_STATE", 8, state=int(GateState.OPEN)))
    state.apply_status(status(6, estop=0, gate=0))  # sent before the press: stale
    assert state.latch.pressed
    assert state.gate is GateState.OPEN
    state.apply_status(status(8, estop=1, gate=int(GateState.OPEN)))
    assert state.latch.pressed
    state.apply_status(status(9, estop=0, gate=int(GateState.CLOSING)))  # event 9 still on its way
    assert not state.latch.pressed
    assert state.gate is GateState.CLOSING


def test_a_status_is_taken_once_so_a_refusal_in_between_holds_until_the_next() -> None:
    state = McuState()
    latest = status(0, estop=0)
    state.apply_status(latest)
    state.latch.set(True, "MCU reply")
    state.apply_status(latest)  # the same STATUS again, read by another poll
    assert state.latch.pressed
    state.apply_status(status(0, estop=0))
    assert not state.latch.pressed


def test_an_mcu_restart_locks_the_compartments_and_restarts_the_event_count() -> None:
    state = McuState()
    state.apply_event(event("COMPARTMENT_STATE", 40, index=2, state=int(CompartmentState.UNLOCKED)))
    state.apply_status(status(2, boot_id=0xBEEF, estop=1))  # a new boot counts from 1 again
    assert state.compartments[2] is CompartmentState.LOCKED
    assert state.latch.pressed


def test_an_mcu_fault_is_logged_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    state = McuState()
    state.apply_event(event("FAULT", 1, code=0x0001, active=1))
    assert (state.gate, state.latch.pressed) == (GateState.CLOSED, False)
    assert "MCU fault code=0x0001 active" in caplog.messages
