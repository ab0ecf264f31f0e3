"""Bounded instants (models/instants.py): any RFC 3339 date-time, any offset, is kept or refused by name,
never an OverflowError; what is kept converts to UTC and to every zone."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from models.base_api import TicketInstant
from models.instants import STORED_EARLIEST, STORED_LATEST, StoredInstant

OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
WIDEST = [dt.timezone(dt.timedelta(hours=-23, minutes=-59)), dt.timezone(dt.timedelta(hours=23, minutes=59))]


class Stored(BaseModel):
    at: StoredInstant


class Ticket(BaseModel):
    at: TicketInstant


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=OFFSETS))
def test_any_date_time_is_kept_or_refused_by_name(value: dt.datetime) -> None:
    text = value.isoformat()
    for model in (Stored, Ticket):
        try:
            kept = model.model_validate_json(f'{{"at": "{text}"}}').at
        except ValidationError as err:
            [error] = err.errors()
            assert (error["loc"], error["type"]) == (("at",), "datetime_out_of_range")
            continue
        assert kept == value
        for zone in (dt.UTC, *WIDEST):
            kept.astimezone(zone)  # never an OverflowError


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("0001-01-01T00:00:00+14:00", False),
        ("0001-01-01T23:59:59Z", False),
        ("0001-01-02T00:00:00Z", True),
        ("9999-12-30T23:59:59.999999Z", True),
        ("9999-12-30T23:59:59.999999-00:01", False),
        ("9999-12-31T23:59:59-14:00", False),
    ],
)
def test_stored_bounds(text: str, kept: bool) -> None:
    assert STORED_EARLIEST <= STORED_LATEST
    try:
        Stored.model_validate_json(f'{{"at": "{text}"}}')
    except ValidationError:
        assert not kept
    else:
        assert kept


@pytest.mark.parametrize("number", ["-1", "0", "1700000000", "99999999999999", "1.5", "true"])
def test_a_number_is_no_date_time(number: str) -> None:
    with pytest.raises(ValidationError, match="RFC 3339 date or date-time string"):
        Stored.model_validate_json(f'{{"at": {number}}}')


def test_the_schema_states_the_bounds() -> None:
    schema = Ticket.model_json_schema()["properties"]["at"]
    assert schema == {
        "format": "date-time",
        "formatMinimum": "1970-01-01T00:00:00Z",
        "formatMaximum": "2106-02-07T06:28:15Z",
        "title": "At",
        "type": "string",
    }
