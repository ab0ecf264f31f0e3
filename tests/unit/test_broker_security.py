"""The dynamic-security plugin's file as broker-config writes it: stored hashes carried over, bad ones
named."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

import pytest

from cloud_sync.db.tables import RobotCredential
from cloud_sync.errors import CloudSyncError
from cloud_sync.sync import broker_files
from cloud_sync.sync.broker_files import dynsec_password, write_broker_config
from cloud_sync.sync.provisioning import mosquitto_hash


def test_a_stored_hash_becomes_the_plugins_fields_for_the_same_password() -> None:
    fields = dynsec_password(mosquitto_hash("s3cret:x"))
    salt, digest = base64.b64decode(str(fields["salt"])), base64.b64decode(str(fields["password"]))
    assert fields["iterations"] == 101
    assert hashlib.pbkdf2_hmac("sha512", b"s3cret:x", salt, 101) == digest


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ("", "not a \\$7\\$ hash"),
        ("$6$101$a$b", "not a \\$7\\$ hash"),
        ("$7$x$a$b", "not a \\$7\\$ hash"),
        ("$7$101$a$b$c", "not a \\$7\\$ hash"),
        ("$7$101$not base64!$b", "not base64"),
        ("$7$101$YWJj$YWJj", "a 3-byte salt and a 3-byte hash, not 12 and 64"),
    ],
)
def test_a_hash_the_plugin_cannot_use_is_refused(stored: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        dynsec_password(stored)


def test_broker_config_names_a_robot_whose_hash_is_unusable_and_writes_nothing(tmp_path: Path) -> None:
    good, bad = uuid.uuid4(), uuid.uuid4()
    rows = [
        RobotCredential(robot_id=good, username=f"robot-{good}", password_hash=mosquitto_hash("a")),
        RobotCredential(robot_id=bad, username=f"robot-{bad}", password_hash="$7$101$a$b"),
    ]
    out = tmp_path / "broker"
    with pytest.raises(CloudSyncError) as raised:
        write_broker_config(rows, out, ingest_user="cloud-ingest", listen=("127.0.0.1", 1883))
    assert str(raised.value) == (
        f"robot {bad}: its stored broker password hash is unusable (not base64); "
        "run `cloud-sync robot provision` for it again"
    )
    assert not out.exists()


def test_broker_config_says_when_the_plugin_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker_files, "DYNSEC_PLUGIN_PATHS", (str(tmp_path / "nowhere" / "*.so"),))
    with pytest.raises(
        CloudSyncError, match=r"dynamic-security plugin .* is not installed here: .*--dynsec-plugin"
    ):
        write_broker_config([], tmp_path / "broker", ingest_user="cloud-ingest", listen=("127.0.0.1", 1883))
    assert not (tmp_path / "broker").exists()
