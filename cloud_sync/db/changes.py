"""The change log robots sync down from (`sync_changes`; docs/sync.md, "Down-sync").

Every change to a replicated table (`models.sync_changes.REPLICATED`) is appended to the log in the same
transaction as the change itself, once per scope the row belongs to:

- ORM writes (the Base and Store APIs, key rotation, revocations) through `ChangeLoggingSession`, the
  session class every cloud session uses: it notes the replicated rows a flush adds, changes or deletes, and
  logs them from the database's own copy right after the flush.
- Core writes call `log_upserts` themselves (ingest builds the same entries in PostgreSQL itself).

Scopes: tickets, their tokens, their revocations and their passengers travel in the ticket's train scope;
a passenger's face embeddings in the train scope of every ticket of theirs that is not revoked; stores and
items in the scope of every train `train_stores` puts them on; engineers, auth cards, signing keys, hotels
and attractions go to every robot; assignments to the robot assigned, and so do the tasks of the purchases
it made (ingest names the robot in the task's `additional_data`). A ticket brings its passenger and the
passenger's embeddings along into its train's scope, a `train_stores` row its store and that store's items;
a revocation, or a ticket deleted, withdraws the passenger's embeddings from that scope (delete entries
there) unless another unrevoked ticket of theirs is on that train.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, Table, delete, event, func, insert, select, text, update
from sqlalchemy.orm import Session, UOWTransaction
from sqlmodel import Session as SqlModelSession

from cloud_sync.db.tables import CLOUD_METADATA
from models.base_server import BASE_METADATA
from models.columns import utcnow
from models.store_server import STORE_METADATA
from models.sync_changes import ALL_SCOPE, REPLICATED, Change, binary_text, robot_scope, train_scope

CHANGES: Final = CLOUD_METADATA.tables["sync_changes"]
FLOORS: Final = CLOUD_METADATA.tables["sync_change_floors"]
_IN_CHUNK: Final = 5_000  # keys per IN (...): well inside SQLite's 32,766 parameters
# PostgreSQL: the advisory lock ("rail") a writer of the log holds until its commit (`_write` says why).
PG_LOG_LOCK: Final = f"SELECT pg_advisory_xact_lock({0x7261696C})"
_UNSCOPED: Final = {"engineers", "auth_cards", "signing_keys", "hotels", "attractions"}
EMBEDDINGS: Final = "face_embeddings"
TASKS: Final = "tasks"
RowMap = Mapping[Any, Any]  # a row as SQLAlchemy maps it, or a dict of its columns


def table(name: str) -> Table:
    for metadata in (BASE_METADATA, STORE_METADATA, CLOUD_METADATA):
        if name in metadata.tables:
            return metadata.tables[name]
    raise KeyError(name)


def jsonable(value: Any) -> Any:
    """A column value as the change log keeps it (JSON): UUIDs, dates and times as ISO text, bytes (a face
    embedding's vector) as base64 text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return binary_text(value)
    return value


def row_value(table_name: str, row: RowMap) -> dict[str, Any]:
    return {c: jsonable(row[c]) for c in REPLICATED[table_name].columns}


def _chunks(keys: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(keys), _IN_CHUNK):
        yield keys[i : i + _IN_CHUNK]


def _trains_by(conn: Connection, source: str, column: str, keys: Iterable[Any]) -> dict[Any, set[str]]:
    """{key: train scopes} from `source` (tickets or train_stores) rows whose `column` is one of `keys`."""
    src = table(source)
    found: dict[Any, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(set(keys), key=str)):
        query = select(src.c[column], src.c.train_number).where(src.c[column].in_(chunk)).distinct()
        for key, train in conn.execute(query):
            found[key].add(train_scope(train))
    return found


def scopes_of(conn: Connection, table_name: str, rows: Sequence[RowMap]) -> list[set[str]]:
    """The scopes each row belongs to (rows as the database has them, all columns)."""
    if table_name in _UNSCOPED:
        return [{ALL_SCOPE} for _ in rows]
    if table_name in ("tickets", "train_stores"):
        return [{train_scope(r["train_number"])} for r in rows]
    if table_name == "robot_assignments":
        return [{robot_scope(r["robot_id"])} for r in rows]
    if table_name == TASKS:
        return [{robot_scope(robot)} if (robot := task_robot(r)) is not None else set() for r in rows]
    if table_name == EMBEDDINGS:
        wanted = _face_scopes(conn, [r["user_id"] for r in rows])
        return [set(wanted.get(r["user_id"], ())) for r in rows]
    by, column, source = {
        "users": ("id", "user_id", "tickets"),
        "ticket_revocations": ("ticket_id", "id", "tickets"),
        "ticket_tokens": ("ticket_id", "id", "tickets"),
        "stores": ("id", "store_id", "train_stores"),
        "store_items": ("store_id", "store_id", "train_stores"),
    }[table_name]
    trains = _trains_by(conn, source, column, [r[by] for r in rows])
    return [set(trains.get(r[by], ())) for r in rows]


def task_robot(row: RowMap) -> str | None:
    """The robot whose purchase made this task (ingest writes it in `additional_data`), or None: a task of
    the Store API's own purchase desk goes to no robot."""
    extra = row["additional_data"]
    robot = extra.get("robot_id") if isinstance(extra, dict) else None
    return robot if isinstance(robot, str) else None


def _face_scopes(conn: Connection, user_ids: Iterable[Any]) -> dict[Any, set[str]]:
    """{user id: the train scopes their face embeddings belong to}: the trains of their unrevoked tickets."""
    tickets, revocations = table("tickets"), table("ticket_revocations")
    found: dict[Any, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(set(user_ids), key=str)):
        query = (
            select(tickets.c.user_id, tickets.c.train_number)
            .where(tickets.c.user_id.in_(chunk), tickets.c.id.not_in(select(revocations.c.ticket_id)))
            .distinct()
        )
        for user, train in conn.execute(query):
            found[user].add(train_scope(train))
    return found


def _rows(conn: Connection, table_name: str, column: str, keys: Iterable[Any]) -> list[RowMap]:
    t = table(table_name)
    found: list[RowMap] = []
    for chunk in _chunks(sorted(set(keys), key=str)):
        found.extend(r._mapping for r in conn.execute(select(t).where(t.c[column].in_(chunk))))
    return found


def log_upserts(conn: Connection, table_name: str, keys: Iterable[Any]) -> int:
    """Log the rows of `table_name` with these keys as they now are (a key no longer there is skipped),
    with their companions. Returns the number of log entries written."""
    rows = _rows(conn, table_name, REPLICATED[table_name].key, keys)
    entries: list[dict[str, Any]] = []
    _entries(conn, table_name, rows, scopes_of(conn, table_name, rows), entries)
    return _write(conn, entries)


def _entries(
    conn: Connection,
    table_name: str,
    rows: Sequence[RowMap],
    scopes: Sequence[set[str]],
    out: list[dict[str, Any]],
) -> None:
    key = REPLICATED[table_name].key
    now = utcnow()
    by_scope: dict[str, set[Any]] = defaultdict(set)  # companions: user ids / store ids per scope
    for row, row_scopes in zip(rows, scopes, strict=True):
        value = row_value(table_name, row)
        for scope in sorted(row_scopes):
            out.append(_entry(scope, table_name, row[key], value, now))
            if table_name == "tickets":
                by_scope[scope].add(row["user_id"])
            elif table_name == "train_stores":
                by_scope[scope].add(row["store_id"])
    if table_name == "ticket_revocations":
        _face_entries(conn, _holders(conn, [r["ticket_id"] for r in rows]), out)
    for scope, ids in sorted(by_scope.items()):
        if table_name == "tickets":
            users = _rows(conn, "users", "id", ids)
            _entries(conn, "users", users, [{scope}] * len(users), out)
        else:
            stores = _rows(conn, "stores", "id", ids)
            _entries(conn, "stores", stores, [{scope}] * len(stores), out)
            items = _rows(conn, "store_items", "store_id", ids)
            _entries(conn, "store_items", items, [{scope}] * len(items), out)
    if table_name == "tickets":
        _face_entries(conn, {(user, scope) for scope, ids in by_scope.items() for user in ids}, out)


def _holders(conn: Connection, ticket_ids: Iterable[Any]) -> set[tuple[Any, str]]:
    """(user id, train scope) of each of these tickets that is still there."""
    return {(r["user_id"], train_scope(r["train_number"])) for r in _rows(conn, "tickets", "id", ticket_ids)}


def _face_entries(conn: Connection, touched: Iterable[tuple[Any, str]], out: list[dict[str, Any]]) -> None:
    """Companions of tickets and revocations: for each (user, train scope) one of them touched, the user's
    face embeddings as upserts in that scope if the user holds an unrevoked ticket on that train, else as
    deletes there (withdrawn). After a withdrawal they go again, as upserts, to every scope that still wants
    them: a robot keeps one scope per face, the one it last came in, and takes a delete only in that scope
    (robot_agent/store/replica.py), so a robot that holds both trains keeps the face."""
    scopes_by_user: dict[Any, set[str]] = defaultdict(set)
    for user, scope in touched:
        scopes_by_user[user].add(scope)
    if not scopes_by_user:
        return
    embeddings, ids_of = table(EMBEDDINGS), defaultdict(list)
    for chunk in _chunks(sorted(scopes_by_user, key=str)):  # keys only: most passengers have no face
        for face_id, user in conn.execute(
            select(embeddings.c.id, embeddings.c.user_id).where(embeddings.c.user_id.in_(chunk))
        ):
            ids_of[user].append(face_id)
    if not ids_of:
        return
    wanted, now = _face_scopes(conn, ids_of), utcnow()
    upserts: dict[Any, set[str]] = {}
    for user in sorted(ids_of, key=str):
        gone = scopes_by_user[user] - wanted.get(user, set())
        out.extend(
            _entry(scope, EMBEDDINGS, face_id, None, now)
            for scope in sorted(gone)
            for face_id in sorted(ids_of[user])
        )
        still = wanted.get(user, set())
        upserts[user] = still if gone else scopes_by_user[user] & still
    rows = _rows(conn, EMBEDDINGS, "user_id", [user for user, scopes in upserts.items() if scopes])
    rows.sort(key=lambda r: (str(r["user_id"]), str(r["id"])))
    _entries(conn, EMBEDDINGS, rows, [upserts[r["user_id"]] for r in rows], out)


def _entry(
    scope: str, table_name: str, key: Any, value: dict[str, Any] | None, now: dt.datetime
) -> dict[str, Any]:
    """One row of the log: an upsert with the row's `value`, or a delete (None)."""
    op = "delete" if value is None else "upsert"
    return {
        "scope": scope,
        "table_name": table_name,
        "row_key": str(key),
        "op": op,
        "value": value,
        "changed_at": now,
    }


def _delete_entries(conn: Connection, table_name: str, keys: Iterable[Any]) -> list[dict[str, Any]]:
    """Log entries for deleting these rows; made before the rows go, while their scopes can still be found."""
    key, now = REPLICATED[table_name].key, utcnow()
    rows = _rows(conn, table_name, key, keys)
    return [
        _entry(scope, table_name, row[key], None, now)
        for row, scopes in zip(rows, scopes_of(conn, table_name, rows), strict=True)
        for scope in sorted(scopes)
    ]


def _write(conn: Connection, entries: list[dict[str, Any]]) -> int:
    if entries:
        if conn.dialect.name == "postgresql":
            # Ids in commit order: a transaction holds this lock from taking its ids until it commits, so
            # no change with a smaller id can commit after down-sync has read past it (SQLite has one
            # writer at a time anyway).
            conn.execute(text(PG_LOG_LOCK))
        conn.execute(insert(CHANGES), entries)
    return len(entries)


def pg_log_statement(table_name: str) -> str:
    """PostgreSQL: one statement logging the rows of `table_name` whose keys are in $1 (uuid[]) as upserts in
    their train scopes, stamped $2: the entries `log_upserts` makes for tickets and store items, built in the
    database, for ingest's raw asyncpg connection. Take PG_LOG_LOCK first."""
    columns = REPLICATED[table_name].columns
    value = "json_build_object(" + ", ".join(f"'{c}', r.{c}" for c in columns) + ")"
    if table_name == TASKS:  # in its robot's scope, named by ingest
        return f"""
INSERT INTO sync_changes (scope, table_name, row_key, op, value, changed_at)
SELECT 'robot:' || (r.additional_data->>'robot_id'), 'tasks', r.id::text, 'upsert', {value}, $2
FROM tasks r WHERE r.id = ANY($1::uuid[]) AND r.additional_data->>'robot_id' IS NOT NULL
ORDER BY r.id
"""
    trains = {
        "tickets": "SELECT DISTINCT t.id AS key, t.train_number FROM tickets t WHERE t.id = ANY($1::uuid[])",
        "store_items": "SELECT DISTINCT i.id AS key, ts.train_number FROM store_items i "
        "JOIN train_stores ts ON ts.store_id = i.store_id WHERE i.id = ANY($1::uuid[])",
    }[table_name]
    return f"""
INSERT INTO sync_changes (scope, table_name, row_key, op, value, changed_at)
SELECT 'train:' || s.train_number, '{table_name}', r.{REPLICATED[table_name].key}::text, 'upsert', {value}, $2
FROM ({trains}) AS s JOIN {table_name} r ON r.id = s.key
ORDER BY s.train_number, r.id
"""


# -- the ORM's writes ------------------------------------------------------------------------------------

_PENDING: Final = "railbot_sync_changes"


class ChangeLoggingSession(SqlModelSession):
    """A Session that logs every change to a replicated table in the same transaction (see the module)."""


def _table_of(obj: object) -> str | None:
    name = getattr(type(obj), "__tablename__", None)
    return name if name in REPLICATED else None


def _before_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    upserts: dict[str, set[Any]] = defaultdict(set)
    deletes: dict[str, set[Any]] = defaultdict(set)
    for obj in session.new:
        if (name := _table_of(obj)) is not None:
            upserts[name].add(getattr(obj, REPLICATED[name].key))
    for obj in session.dirty:
        if (name := _table_of(obj)) is not None and session.is_modified(obj):
            upserts[name].add(getattr(obj, REPLICATED[name].key))
    for obj in session.deleted:
        if (name := _table_of(obj)) is not None:
            deletes[name].add(getattr(obj, REPLICATED[name].key))
    if not upserts and not deletes:
        return
    conn = session.connection()
    entries = [e for name, keys in sorted(deletes.items()) for e in _delete_entries(conn, name, keys)]
    pending = session.info.setdefault(_PENDING, ([], defaultdict(set), set()))
    pending[0].extend(entries)
    for name, keys in upserts.items():
        pending[1][name] |= keys
    # A ticket deleted withdraws its passenger's embeddings from its train (once it is gone, see after).
    pending[2].update(_holders(conn, deletes.get("tickets", ())))
    if EMBEDDINGS in deletes:
        _forget_vectors(conn, deletes[EMBEDDINGS])


def _forget_vectors(conn: Connection, keys: Iterable[Any]) -> None:
    """A face embedding deleted leaves no copy of its vector in the log: its earlier upserts become deletes.
    A robot reading the log from before them applies a delete of a face it does not hold (nothing), where it
    would have added the face only to delete it again."""
    conn.execute(
        update(CHANGES)
        .where(
            CHANGES.c.table_name == EMBEDDINGS,
            CHANGES.c.op == "upsert",
            CHANGES.c.row_key.in_(sorted(str(k) for k in keys)),
        )
        .values(op="delete", value=None)
    )


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending is None:
        return
    deletes, upserts, withdrawn = pending
    conn = session.connection()
    _write(conn, deletes)
    for name, keys in sorted(upserts.items()):
        log_upserts(conn, name, keys)
    faces: list[dict[str, Any]] = []
    _face_entries(conn, withdrawn, faces)
    _write(conn, faces)


def _discard(session: Session, *_args: object) -> None:
    session.info.pop(_PENDING, None)


event.listen(ChangeLoggingSession, "before_flush", _before_flush)
event.listen(ChangeLoggingSession, "after_flush", _after_flush)
event.listen(ChangeLoggingSession, "after_rollback", _discard)


# -- reading the log --------------------------------------------------------------------------------------


def changes_after(conn: Connection, scope: str, after: int, limit: int) -> list[Change]:
    query = (
        select(CHANGES.c.change_id, CHANGES.c.table_name, CHANGES.c.op, CHANGES.c.row_key, CHANGES.c.value)
        .where(CHANGES.c.scope == scope, CHANGES.c.change_id > after)
        .order_by(CHANGES.c.change_id)
        .limit(limit)
    )
    return [Change(r.change_id, r.table_name, r.op, r.row_key, r.value) for r in conn.execute(query)]


def last_change_id(conn: Connection) -> int:
    """The newest change_id handed out: the newest entry, or the newest floor once compaction emptied it."""
    newest = conn.execute(select(func.coalesce(func.max(CHANGES.c.change_id), 0))).scalar_one()
    floor = conn.execute(select(func.coalesce(func.max(FLOORS.c.floor), 0))).scalar_one()
    return max(int(newest), int(floor))


def floor_of(conn: Connection, scope: str) -> int:
    """The newest change_id compacted away in `scope` (0 if none): a cursor below it needs a snapshot."""
    found = conn.execute(select(FLOORS.c.floor).where(FLOORS.c.scope == scope)).scalar()
    return int(found or 0)


def compact(conn: Connection, upto: int) -> int:
    """Delete the log's entries up to change_id `upto`; robots behind it get a snapshot. Returns how many."""
    scopes = [
        s for (s,) in conn.execute(select(CHANGES.c.scope).where(CHANGES.c.change_id <= upto).distinct())
    ]
    for scope in scopes:
        current = floor_of(conn, scope)
        if current == 0:
            conn.execute(insert(FLOORS).values(scope=scope, floor=upto))
        elif current < upto:
            conn.execute(FLOORS.update().where(FLOORS.c.scope == scope).values(floor=upto))
    return int(conn.execute(delete(CHANGES).where(CHANGES.c.change_id <= upto)).rowcount)


def compact_before(conn: Connection, when: dt.datetime) -> tuple[int, int]:
    """Compact the log up to its newest entry made before `when`: (entries deleted, that entry's id)."""
    upto = conn.execute(
        select(func.coalesce(func.max(CHANGES.c.change_id), 0)).where(CHANGES.c.changed_at < when)
    ).scalar_one()
    return (compact(conn, int(upto)) if upto else 0), int(upto)


def status(conn: Connection) -> list[tuple[str, int, int, int]]:
    """(scope, entries, newest change_id, floor) for every scope with entries or a floor."""
    found = {
        scope: (int(n), int(newest))
        for scope, n, newest in conn.execute(
            select(CHANGES.c.scope, func.count(), func.max(CHANGES.c.change_id)).group_by(CHANGES.c.scope)
        )
    }
    floors = {scope: int(floor) for scope, floor in conn.execute(select(FLOORS.c.scope, FLOORS.c.floor))}
    return [
        (scope, *found.get(scope, (0, 0)), floors.get(scope, 0))
        for scope in sorted(found.keys() | floors.keys())
    ]


def snapshot(conn: Connection, scope: str) -> list[Change]:
    """Every row in `scope` as it is now, as upserts (change_id 0), parents before children."""
    out: list[Change] = []

    def add(table_name: str, rows: Iterable[RowMap]) -> None:
        key = REPLICATED[table_name].key
        out.extend(Change(0, table_name, "upsert", str(r[key]), row_value(table_name, r)) for r in rows)

    def all_rows(table_name: str, *where: Any) -> list[RowMap]:
        t = table(table_name)
        return [r._mapping for r in conn.execute(select(t).where(*where))]

    if scope == ALL_SCOPE:
        for name in ("engineers", "auth_cards", "signing_keys", "hotels", "attractions"):
            add(name, all_rows(name))
    elif scope.startswith("robot:"):
        t = table("robot_assignments")
        add("robot_assignments", all_rows("robot_assignments", t.c.robot_id == uuid.UUID(scope[6:])))
        tasks = table(TASKS)
        robot = str(uuid.UUID(scope[6:]))
        add(TASKS, all_rows(TASKS, tasks.c.additional_data["robot_id"].as_string() == robot))
    else:
        train = int(scope.removeprefix("train:"))
        tickets, stops = table("tickets"), table("train_stores")
        ticket_rows = all_rows("tickets", tickets.c.train_number == train)
        add("users", _rows(conn, "users", "id", {r["user_id"] for r in ticket_rows}))
        add("tickets", ticket_rows)
        of_train = select(tickets.c.id).where(tickets.c.train_number == train)
        for name in ("ticket_tokens", "ticket_revocations"):
            add(name, all_rows(name, table(name).c.ticket_id.in_(of_train)))
        revoked = select(table("ticket_revocations").c.ticket_id)
        holders = select(tickets.c.user_id).where(
            tickets.c.train_number == train, tickets.c.id.not_in(revoked)
        )
        add(EMBEDDINGS, all_rows(EMBEDDINGS, table(EMBEDDINGS).c.user_id.in_(holders)))
        stop_rows = all_rows("train_stores", stops.c.train_number == train)
        store_ids = {r["store_id"] for r in stop_rows}
        add("stores", _rows(conn, "stores", "id", store_ids))
        add("store_items", _rows(conn, "store_items", "store_id", store_ids))
        add("train_stores", stop_rows)
    return out
