"""cloud-sync as an operator runs it: migrate, keys, tokens, and serve (which refuses an old database)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import accepts_connections, free_port, wait_until
from tests.support.postgres import ThrowawayDatabase

BIN = Path(sys.executable).parent


def cloud(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cloud-sync"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'cloud.db'}"
    database: ThrowawayDatabase = request.getfixturevalue("postgres_db")
    return database.dsn


def get(port: int, path: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_operator_workflow(db_url: str, tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    keys = str(tmp_path / "keys")
    refused = cloud("serve", "--db", db_url, "--keys-dir", keys, cwd=tmp_path)
    assert refused.returncode == 1
    assert f"the database is not migrated: run `cloud-sync migrate --db {db_url}` first" in refused.stderr
    assert cloud("token", "create", "--db", db_url, "--role", "admin", cwd=tmp_path).returncode == 1

    migrated = cloud("migrate", "--db", db_url, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "Running upgrade  -> 0001" in migrated.stderr
    assert cloud("migrate", "--db", db_url, cwd=tmp_path).returncode == 0  # a second run changes nothing

    first = cloud("keys", "rotate", "--db", db_url, "--keys-dir", keys, cwd=tmp_path)
    second = cloud("keys", "rotate", "--db", db_url, "--keys-dir", keys, cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    listed = cloud("keys", "list", "--db", db_url, "--keys-dir", keys, cwd=tmp_path).stdout.splitlines()
    assert listed[1].startswith(first.stdout.strip())
    assert "retired  here" in listed[1]
    assert listed[2].startswith(second.stdout.strip())
    assert "active   here" in listed[2]
    for pem in (tmp_path / "keys").glob("ticket-*.pem"):
        assert pem.stat().st_mode & 0o777 == 0o600

    created = cloud("token", "create", "--db", db_url, "--role", "admin", "--label", "ops", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("rbt_")
    assert token not in created.stderr
    store_without_id = cloud("token", "create", "--db", db_url, "--role", "store", cwd=tmp_path)
    assert (store_without_id.returncode, store_without_id.stderr.strip()) == (
        1,
        "cloud-sync: a store token needs --store-id",
    )

    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "cloud-sync"), "serve", "--db", db_url, "--keys-dir", keys, "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    wait_until(
        lambda: accepts_connections("127.0.0.1", port) or process.poll() is not None, 30, "cloud-sync serve"
    )
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    assert get(port, "/store_api/admin/stores", token) == (
        200,
        {"items": [], "total": 0, "page": 1, "size": 50},
    )
    assert get(port, "/store_api/admin/stores")[0] == 401
    status, trust = get(port, "/base_api/keys")
    assert status == 200
    assert len(trust["keys"]) == 2  # type: ignore[arg-type]
    status, spec = get(port, "/openapi.json")
    assert (status, spec["openapi"]) == (200, "3.1.0")

    listed_tokens = cloud("token", "list", "--db", db_url, cwd=tmp_path).stdout.splitlines()
    [row] = [line for line in listed_tokens[1:] if line.rstrip().endswith("ops")]
    assert token not in "\n".join(listed_tokens)
    token_id = row.split()[0]
    assert cloud("token", "revoke", "--db", db_url, token_id, cwd=tmp_path).returncode == 0
    wait_until(
        lambda: get(port, "/store_api/admin/stores", token)[0] == 401, 15, "the revoked token to be refused"
    )
    again = cloud("token", "revoke", "--db", db_url, token_id, cwd=tmp_path)
    assert (again.returncode, again.stderr.strip()) == (1, f"cloud-sync: no token with id {token_id}")


def test_bad_database_urls_are_named(tmp_path: Path) -> None:
    for url, message in (
        ("mysql://x/y", "unsupported database 'mysql'"),
        ("not a url", "not a database URL"),
        ("sqlite://", "in-memory SQLite database"),
    ):
        result = cloud("migrate", "--db", url, cwd=tmp_path)
        assert result.returncode == 1
        assert message in result.stderr, result.stderr


def test_default_database_is_var_cloud_db(tmp_path: Path) -> None:
    assert cloud("migrate", cwd=tmp_path).returncode == 0
    assert (tmp_path / "var" / "cloud.db").is_file()


def test_the_change_log_is_shown_and_compacted(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert cloud("migrate", "--db", db, cwd=tmp_path).returncode == 0
    for _ in range(2):  # each new signing key goes to every robot: one entry in scope "all"
        assert (
            cloud("keys", "rotate", "--db", db, "--keys-dir", str(tmp_path / "keys"), cwd=tmp_path).returncode
            == 0
        )
    status = cloud("changes", "status", "--db", db, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[1].split() == ["all", "3", "3", "0"], status.stdout  # 2 new, 1 retired

    compacted = cloud("changes", "compact", "--db", db, "--keep-days", "0", cwd=tmp_path)
    assert compacted.returncode == 0, compacted.stderr
    assert compacted.stdout.strip() == "deleted 3 entries up to change 3"
    after = cloud("changes", "status", "--db", db, cwd=tmp_path)
    assert after.stdout.splitlines()[1].split() == ["all", "0", "0", "3"], (
        "no entries left, robots behind get a snapshot"
    )

    refused = cloud("changes", "compact", "--db", db, "--keep-days", "-1", cwd=tmp_path)
    assert refused.returncode == 1
    assert "--keep-days must be 0 or more" in refused.stderr
