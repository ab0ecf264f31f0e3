"""Down-sync's message and request formats: what the cloud encodes decodes the same; anything else is refused
with a message naming the problem."""

from __future__ import annotations

import uuid

import cbor2
import pytest

from models.sync_changes import (
    REPLICATED,
    Answered,
    Change,
    Changes,
    ChangesRefused,
    SyncRequest,
    binary_of,
    binary_text,
    decode_changes,
    encode_answered,
    encode_changes,
    encode_request,
    parse_request,
)
from robot_agent.store.replica import SEALED
from robot_agent.store.tables import ROBOT_METADATA

USER = {"id": str(uuid.uuid4()), "name": "Anna"}


def test_a_log_message_and_a_snapshot_part_round_trip() -> None:
    log = Changes("train:742", "log", 10, 12, (Change(11, "users", "upsert", USER["id"], USER),))
    assert decode_changes(encode_changes(log)) == log
    part = Changes("all", "snapshot", 0, 99, (), "s1", 3, True)
    assert decode_changes(encode_changes(part)) == part
    assert decode_changes(encode_answered(Answered("a1b2"))) == Answered("a1b2")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\x18", "not CBOR"),
        (cbor2.dumps([1]), "expected a map"),
        (cbor2.dumps({"v": 2}), "version 2"),
        (cbor2.dumps({"v": 1, "scope": "train:x", "kind": "log"}), "bad scope"),
        (cbor2.dumps({"v": 1, "scope": "all", "kind": "diff", "after": 0, "upto": 0}), "kind 'diff'"),
        (cbor2.dumps({"v": 1, "kind": "answered", "request": ""}), "request: expected an id"),
        (
            cbor2.dumps({"v": 1, "scope": "all", "kind": "log", "after": 5, "upto": 4, "changes": []}),
            "before",
        ),
        (
            cbor2.dumps(
                {
                    "v": 1,
                    "scope": "all",
                    "kind": "log",
                    "after": 0,
                    "upto": 9,
                    "changes": [[1, "robots", "delete", "k", None]],
                }
            ),
            "unknown table 'robots'",
        ),
        (
            cbor2.dumps(
                {
                    "v": 1,
                    "scope": "all",
                    "kind": "log",
                    "after": 0,
                    "upto": 9,
                    "changes": [[1, "users", "upsert", "k", {"id": "k"}]],
                }
            ),
            "needs the columns",
        ),
        (
            cbor2.dumps(
                {
                    "v": 1,
                    "scope": "all",
                    "kind": "log",
                    "after": 3,
                    "upto": 9,
                    "changes": [[2, "users", "delete", "k", None]],
                }
            ),
            "outside (3, 9]",
        ),
    ],
)
def test_malformed_messages_are_refused_naming_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(
        ChangesRefused, match=problem.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")
    ):
        decode_changes(body)


def test_requests_round_trip_and_bad_ones_are_refused() -> None:
    cursors = {"all": 3, "train:742": 9}
    assert parse_request(encode_request(cursors)) == SyncRequest(cursors, None)
    assert parse_request(encode_request(cursors, "a1b2")) == SyncRequest(cursors, "a1b2")
    for bad, problem in [
        (b'{"cursors": {}, "request": "a b"}', "request: expected an id"),
        (b'{"cursors": {}, "request": 7}', "request: expected an id"),
        (b"{", "not JSON"),
        (b'{"after": 3}', "expected"),
        (b'{"cursors": {"everything": 1}}', "bad scope"),
        (b'{"cursors": {"all": -1}}', "whole number"),
        (b" " * 70_000, "at most"),
    ]:
        with pytest.raises(ChangesRefused, match=problem):
            parse_request(bad)


def test_the_robot_keeps_exactly_the_columns_that_travel() -> None:
    for name, replicated in REPLICATED.items():
        if name == SEALED:
            continue
        columns = {c.name for c in ROBOT_METADATA.tables[name].columns} - {"sync_scope"}
        assert columns == set(replicated.columns), name


def test_face_embeddings_have_no_clear_text_table_on_the_robot_but_sealed_rows_of_faces() -> None:
    assert SEALED not in ROBOT_METADATA.tables
    faces = {c.name for c in ROBOT_METADATA.tables["faces"].columns}
    # The vector travels and is sealed into `embedding`; the rest is the row's own.
    assert set(REPLICATED[SEALED].columns) - {"vector"} <= faces
    assert {"embedding", "sync_scope"} <= faces


def test_binary_columns_travel_as_base64_text_and_nothing_else_decodes() -> None:
    data = bytes(range(256)) * 2
    assert binary_of(binary_text(data), "vector") == data
    for bad in (None, 7, "not base64!", "AAA"):
        with pytest.raises(ChangesRefused, match="vector"):
            binary_of(bad, "vector")
