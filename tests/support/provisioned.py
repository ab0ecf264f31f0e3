"""The files `cloud-sync robot provision --out var` writes, for tests of a robot not really provisioned."""

from __future__ import annotations

from pathlib import Path


def write_provisioned_files(folder: Path) -> None:
    """A broker login and an empty trust list where the example robot.toml names them (`var/`)."""
    (folder / "var").mkdir(exist_ok=True)
    credentials = folder / "var" / "mqtt-credentials"
    credentials.write_text("robot-x:secret\n")
    credentials.chmod(0o600)
    (folder / "var" / "trust.json").write_text('{"keys": []}\n')
