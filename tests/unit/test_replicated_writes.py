"""Every write to a table robots copy reaches the change log (docs/decisions.md §20, §30).

The ORM's writes are logged by `ChangeLoggingSession` whatever code makes them; a Core statement or raw SQL
bypasses it, and must log the rows itself. This check reads every module of `cloud_sync` and finds each
write that names a replicated table (SQLAlchemy's `insert`/`update`/`delete` of a table or model, the sale
writer's `SqliteInsert`, and `INSERT INTO`/`UPDATE`/`DELETE FROM` in SQL text); each must be one of the
writers below, whose logging a test proves. A new one fails here until it logs and is added, with its test.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from models.sync_changes import REPLICATED

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cloud_sync"

# (module, table): the test that shows the write reaches the robots.
LOGGED_WRITERS = {
    # The sale writer, for the purchase desk and ingest: tests/integration/test_sale_writer.py,
    # tests/integration/test_ingest.py::test_what_ingest_changes_that_robots_copy_goes_to_the_change_log.
    ("cloud_sync.desks.sales", "store_items"),
    # Tickets a robot used: test_ingest.py::test_what_ingest_changes_that_robots_copy_goes_to_the_change_log.
    ("cloud_sync.sync.ingest_store", "tickets"),
    # A robot's sales' tasks, made and moved on by ingest:
    # test_ingest.py::test_a_robots_sale_s_task_goes_down_to_it.
    ("cloud_sync.desks.sales", "tasks"),
    ("cloud_sync.sync.ingest_store", "tasks"),
}
_WRITE_CALLS = {"insert", "update", "delete", "sqlite_insert", "pg_insert", "SqliteInsert"}
_SQL_WRITE = re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)")


def _table_name(value: Any) -> str | None:
    """The table a Table or a mapped class stands for."""
    name = getattr(value, "__tablename__", None) or getattr(value, "name", None)
    return name if isinstance(name, str) else None


def _is_function(func: ast.expr, module: ModuleType) -> bool:
    """Whether `func` is a function by name or a module's (not a method: `session.delete(row)` is the ORM's,
    logged by its session; `dict.update` is no write)."""
    if isinstance(func, ast.Name):
        return True
    if isinstance(func, ast.Attribute):
        try:
            return isinstance(eval(ast.unparse(func.value), vars(module)), ModuleType)
        except Exception:
            return False
    return False


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def writes_in(module_name: str, source: str) -> tuple[set[str], list[str]]:
    """The tables `source`'s writes name, and the writes whose table cannot be told (as source text)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(source)
    skip = _docstrings(tree)
    tables: set[str] = set()
    unknown: list[str] = []
    for node in ast.walk(tree):
        target: ast.expr | None = None
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if isinstance(func, ast.Attribute) and name in {"insert", "update", "delete"} and not node.args:
                target = func.value  # TABLE.insert()
            elif name in _WRITE_CALLS and node.args and _is_function(func, module):
                target = node.args[0]  # insert(TABLE), sa.update(Model), sales.SqliteInsert(TABLE)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            tables.update(_SQL_WRITE.findall(node.value))
        if target is None:
            continue
        try:
            value = eval(ast.unparse(target), vars(module))
        except Exception:
            unknown.append(ast.unparse(node))
            continue
        table = _table_name(value)
        if table is None:
            unknown.append(ast.unparse(node))
        else:
            tables.add(table)
    return tables, unknown


def test_every_write_to_a_replicated_table_is_a_writer_that_logs_it() -> None:
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue  # schema changes, run before the service
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        tables, unknown = writes_in(name, path.read_text())
        assert not unknown, f"{name}: cannot tell which table these write: {unknown}"
        found |= {(name, table) for table in tables if table in REPLICATED}
    assert found - LOGGED_WRITERS == set(), "writes robots would never hear of (log them, then list them)"
    assert LOGGED_WRITERS - found == set(), "listed writers that no longer write (drop them from the list)"


def test_the_check_sees_core_and_sql_writes() -> None:
    source = """
from sqlalchemy import update
from models.store_server import STORE_METADATA
X = update(STORE_METADATA.tables["store_items"]).values(balance=1)
Y = "UPDATE tickets SET used = true"
Z = STORE_METADATA.tables["stores"].delete()
"""
    tables, unknown = writes_in("cloud_sync.desks.sales", source)
    assert tables == {"store_items", "tickets", "stores"}
    assert unknown == []
