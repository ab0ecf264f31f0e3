"""Down-sync's formats (docs/sync.md, "Down-sync"): which of the cloud's tables robots copy, in which scope
each row travels, the robot's request, the `down/changes` message and the answer that ends a reply.

Pure functions, shared by the cloud (which encodes) and the robot (which decodes and applies). Row values
travel as JSON-native maps (UUIDs, dates and times as text), exactly as the cloud's change log stores them;
`decode_changes` and `parse_request` refuse anything else with a `ChangesRefused` naming the problem.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import cbor2

from models.errors import ModelsError

CHANGES_VERSION: Final = 1
# Rows per `down/changes` message: 500 tickets are ~120 KiB of CBOR, well inside the broker's limits.
CHANGES_PER_MESSAGE: Final = 500
MAX_REQUEST_BYTES: Final = 64 * 1024

# The scopes a change log entry belongs to. A robot sees ALL, its own ROBOT scope (its assignments) and the
# TRAIN scope of every train it is assigned to.
ALL_SCOPE: Final = "all"
_SCOPE = re.compile(r"^(all|robot:[0-9a-f-]{36}|train:\d{1,9})$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def train_scope(train_number: int) -> str:
    return f"train:{train_number}"


def robot_scope(robot: object) -> str:
    return f"robot:{robot}"


@dataclass(frozen=True)
class Replicated:
    """A cloud table robots keep a copy of: its key column and the columns that travel."""

    table: str
    key: str
    columns: tuple[str, ...]


# What a robot must know (issue 4): tickets, their signed tokens (issue 15: a passenger recognised by face
# is checked with the token), revocations and users of its trains, and those passengers' enrolled face
# embeddings (issue 15); the stores and items of those trains; engineers and their auth cards; the
# ticket-signing keys it trusts; its own assignments. Engineers' `password` is a bcrypt hash; auth cards'
# `key` a keyed hash of the card UID, never the UID. A face embedding's `vector` travels as base64 text of
# its float32 little-endian bytes, and the robot seals it on arrival: it never lands in a clear-text table.
REPLICATED: Final[Mapping[str, Replicated]] = {
    r.table: r
    for r in (
        Replicated("users", "id", ("id", "name")),
        Replicated(
            "tickets",
            "id",
            (
                "id",
                "user_id",
                "train_number",
                "wagon_number",
                "place_number",
                "date",
                "station_id",
                "destination_id",
                "start_date",
                "code",
                "used",
            ),
        ),
        Replicated("ticket_tokens", "ticket_id", ("ticket_id", "token", "expires_at")),
        Replicated("ticket_revocations", "ticket_id", ("ticket_id", "reason", "revoked_at")),
        Replicated("face_embeddings", "id", ("id", "user_id", "embedder", "vector")),
        Replicated("engineers", "id", ("id", "login", "password", "privileges")),
        Replicated("auth_cards", "id", ("id", "engineer_id", "key")),
        Replicated("stores", "id", ("id", "name", "description", "logo_url", "store_type")),
        Replicated(
            "store_items",
            "id",
            ("id", "store_id", "name", "description", "logo_url", "balance", "price_penny", "category"),
        ),
        Replicated("train_stores", "id", ("id", "store_id", "train_number", "train_date")),
        Replicated("signing_keys", "kid", ("kid", "public_key", "created_at", "retired_at")),
        Replicated("hotels", "id", ("id", "name", "description", "logo_url", "destination_id")),
        Replicated("attractions", "id", ("id", "name", "description", "logo_url", "destination_id")),
        Replicated("robot_assignments", "id", ("id", "robot_id", "train_number", "train_date")),
        # The tasks of the purchases this robot made (issue 16, selling): ingest names the robot, and any
        # conflict the purchase met, in the task's `additional_data` (`robot_id`, `conflicts`), so the robot
        # learns when an order is ready to hand over and what the cloud thought of its stock.
        Replicated(
            "tasks", "id", ("id", "store_id", "user_id", "purchase_id", "is_ready", "additional_data")
        ),
    )
}

Op = Literal["upsert", "delete"]


@dataclass(frozen=True)
class Change:
    """One row's change: `value` is the row (the replicated columns) for an upsert, None for a delete.
    `change_id` is the log's id; 0 in a snapshot."""

    change_id: int
    table: str
    op: Op
    key: str
    value: dict[str, Any] | None


@dataclass(frozen=True)
class Changes:
    """One `down/changes` message, all of one scope.

    kind "log": every change of `scope` with `after` < change_id <= `upto` (none left out), in order.
    kind "snapshot": part `part` of snapshot `snapshot` of the scope; its rows replace the robot's copy of
    the scope once the part with `last` arrives, and the robot's cursor becomes `upto`.
    """

    scope: str
    kind: Literal["log", "snapshot"]
    after: int
    upto: int
    changes: tuple[Change, ...]
    snapshot: str = ""
    part: int = 0
    last: bool = False


@dataclass(frozen=True)
class Answered:
    """The last `down/changes` message of the cloud's reply to request `request`: every change the request's
    cursors were behind by has been sent before it, and the cloud pushes new ones from now on."""

    request: str


@dataclass(frozen=True)
class AskAgain:
    """The cloud's down-sync has (re)started and does not know this robot's cursors: ask, please. Sent to the
    robots whose retained status says online when the service subscribes."""


@dataclass(frozen=True)
class SyncRequest:
    """An `up/sync` request: the robot's cursor per scope, and the id the cloud's `Answered` repeats (None
    from a robot that does not send one: it gets no `Answered`)."""

    cursors: dict[str, int]
    request: str | None = None


class ChangesRefused(ModelsError):
    """A down-sync message or request that does not fit the format; the message names the problem."""


def encode_changes(message: Changes) -> bytes:
    body: dict[str, Any] = {
        "v": CHANGES_VERSION,
        "scope": message.scope,
        "kind": message.kind,
        "after": message.after,
        "upto": message.upto,
        "changes": [[c.change_id, c.table, c.op, c.key, c.value] for c in message.changes],
    }
    if message.kind == "snapshot":
        body |= {"snapshot": message.snapshot, "part": message.part, "last": message.last}
    return cbor2.dumps(body)


def encode_answered(message: Answered) -> bytes:
    return cbor2.dumps({"v": CHANGES_VERSION, "kind": "answered", "request": message.request})


def encode_ask_again() -> bytes:
    return cbor2.dumps({"v": CHANGES_VERSION, "kind": "ask"})


def decode_changes(payload: bytes) -> Changes | Answered | AskAgain:
    try:
        body = cbor2.loads(payload)
    except Exception as err:  # cbor2 raises several types for bad input
        raise ChangesRefused(f"not CBOR: {err}") from err
    if not isinstance(body, dict):
        raise ChangesRefused(f"expected a map, got {type(body).__name__}")
    if body.get("v") != CHANGES_VERSION:
        raise ChangesRefused(f"version {body.get('v')!r}, expected {CHANGES_VERSION}")
    kind = body.get("kind")
    if kind == "answered":
        return Answered(_request_id(body.get("request")))
    if kind == "ask":
        return AskAgain()
    scope = _text(body.get("scope"), "scope")
    if not _SCOPE.match(scope):
        raise ChangesRefused(f"bad scope {scope!r}")
    if kind not in ("log", "snapshot"):
        raise ChangesRefused(f"kind {kind!r}, expected 'log', 'snapshot', 'answered' or 'ask'")
    after, upto = _count(body.get("after"), "after"), _count(body.get("upto"), "upto")
    if upto < after:
        raise ChangesRefused(f"upto {upto} is before after {after}")
    raw = body.get("changes")
    if not isinstance(raw, list):
        raise ChangesRefused("changes: expected an array")
    changes = tuple(_change(c, n) for n, c in enumerate(raw))
    if kind == "log" and any(not after < c.change_id <= upto for c in changes):
        raise ChangesRefused(f"a change outside ({after}, {upto}]")
    if kind == "snapshot":
        last = body.get("last")
        if not isinstance(last, bool):
            raise ChangesRefused("last: expected true or false")
        return Changes(
            scope,
            "snapshot",
            after,
            upto,
            changes,
            _text(body.get("snapshot"), "snapshot"),
            _count(body.get("part"), "part"),
            last,
        )
    return Changes(scope, "log", after, upto, changes)


def _change(raw: object, n: int) -> Change:
    if not isinstance(raw, list) or len(raw) != 5:
        raise ChangesRefused(f"change {n}: expected [change_id, table, op, key, value]")
    change_id, table, op, key, value = raw
    if table not in REPLICATED:
        raise ChangesRefused(f"change {n}: unknown table {table!r}")
    if op == "upsert":
        if not isinstance(value, dict) or set(value) != set(REPLICATED[table].columns):
            raise ChangesRefused(
                f"change {n}: an upsert of {table} needs the columns {REPLICATED[table].columns}"
            )
    elif op == "delete":
        if value is not None:
            raise ChangesRefused(f"change {n}: a delete carries no value")
    else:
        raise ChangesRefused(f"change {n}: op {op!r}, expected 'upsert' or 'delete'")
    return Change(_count(change_id, f"change {n} id"), table, op, _text(key, f"change {n} key"), value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 100:
        raise ChangesRefused(f"{what}: expected text of 1 to 100 characters")
    return value


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ChangesRefused(f"{what}: expected a whole number >= 0")
    return value


def encode_request(cursors: Mapping[str, int], request: str | None = None) -> bytes:
    """The payload of `up/sync`: the robot's cursor per scope (a scope it has never had is left out) and the
    request's id, which the cloud's answer repeats."""
    body: dict[str, Any] = {"cursors": dict(sorted(cursors.items()))}
    if request is not None:
        body["request"] = request
    return json.dumps(body, separators=(",", ":")).encode()


def _request_id(value: object) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.match(value):
        raise ChangesRefused("request: expected an id of 1 to 64 letters, digits or '-'")
    return value


def parse_request(payload: bytes) -> SyncRequest:
    if len(payload) > MAX_REQUEST_BYTES:
        raise ChangesRefused(f"request of {len(payload)} bytes, at most {MAX_REQUEST_BYTES}")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise ChangesRefused(f"not JSON: {err}") from err
    cursors = body.get("cursors") if isinstance(body, dict) else None
    if not isinstance(cursors, dict):
        raise ChangesRefused('expected {"cursors": {scope: change_id, ...}}')
    for scope, cursor in cursors.items():
        if not _SCOPE.match(scope):
            raise ChangesRefused(f"bad scope {scope!r}")
        _count(cursor, f"cursor of {scope}")
    request = body.get("request")
    return SyncRequest(dict(cursors), None if request is None else _request_id(request))


def binary_text(data: bytes) -> str:
    """A binary column's value as it travels (and as the cloud's log keeps it): base64 text."""
    return base64.b64encode(data).decode("ascii")


def binary_of(value: object, what: str) -> bytes:
    """The bytes `binary_text` made; ChangesRefused naming `what` for anything else."""
    if not isinstance(value, str):
        raise ChangesRefused(f"{what}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as err:
        raise ChangesRefused(f"{what}: not base64 ({err})") from err


def chunks(changes: Sequence[Change], size: int = CHANGES_PER_MESSAGE) -> list[tuple[Change, ...]]:
    return [tuple(changes[i : i + size]) for i in range(0, len(changes), size)]
