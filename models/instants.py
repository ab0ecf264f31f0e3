"""Instants and dates the APIs accept, bounded by what must hold them, the bounds stated in the JSON schema.

`Annotated[AwareDatetime, Within(earliest, latest)]` takes an RFC 3339 string with an offset (a JSON number
is refused: pydantic would read it as Unix seconds, or milliseconds past 2e10), and refuses an instant outside
`earliest..latest` with a 422 naming the field, instead of failing later where a database, a UTC conversion
or a ticket's NumericDate cannot hold it. The schema carries the bounds as `formatMinimum`/`formatMaximum`
(the JSON Schema vocabulary proposal ajv implements), so clients can see them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema


def rfc3339(value: dt.date) -> str:
    """`value` as RFC 3339: a datetime in UTC with a `Z` (a fraction only if it has one), a date as is."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


@dataclass(frozen=True)
class Within:
    """Bounds for an aware datetime, compared as instants (`2026-01-01T02:00+03:00` is 23:00Z the day before),
    or for a calendar date.

    Comparing aware datetimes never converts them, so an offset that would carry a value past year 1 or 9999
    in UTC is refused here, not raised as an OverflowError later."""

    earliest: dt.date
    latest: dt.date
    why: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            _text_only, core_schema.no_info_after_validator_function(self._check, handler(source))
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(formatMinimum=rfc3339(self.earliest), formatMaximum=rfc3339(self.latest))
        return json_schema

    def _check(self, value: dt.date) -> dt.date:
        if isinstance(value, dt.datetime) and value.utcoffset() is None:  # no instant without an offset
            raise PydanticCustomError("timezone_aware", "Input should have timezone info")
        if not self.earliest <= value <= self.latest:
            raise PydanticCustomError(
                "datetime_out_of_range",
                "Input should be an instant from {earliest} to {latest} ({why})",
                {"earliest": rfc3339(self.earliest), "latest": rfc3339(self.latest), "why": self.why},
            )
        return value


def _text_only(value: Any) -> Any:
    if not isinstance(value, str | dt.date):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date or date-time string")
    return value


# A zone's offset is under a day, so a day's margin inside datetime's own range lets every reader show a
# stored instant in any zone (`astimezone`) without an OverflowError; PostgreSQL's timestamptz holds far more.
STORED_EARLIEST: Final = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
STORED_LATEST: Final = dt.datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=dt.UTC)

STORED: Final = Within(STORED_EARLIEST, STORED_LATEST, "a time every zone can show")
StoredInstant = Annotated[AwareDatetime, STORED]
"""An instant a `timestamp with time zone` column keeps and every reader can convert to its zone."""

CalendarDate = Annotated[dt.date, Within(dt.date.min, dt.date.max, "a calendar date")]
"""A `date`: datetime's whole range, which PostgreSQL's and SQLite's dates hold, as text only."""
