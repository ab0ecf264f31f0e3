"""`cloud-sync serve` enrols faces as a process: with set-up's models it says so once it serves and enrols a
photo (its JSON log unbroken by OpenCV's own lines); without them it still serves, warns once naming
`robot-agent models fetch`, and answers enrolment 503."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.support.face_files import MODELS_DIR, face_photo
from tests.support.http import call
from tests.support.ports import accepts_connections, free_port, wait_until

BIN = Path(sys.executable).parent


def cloud(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [str(BIN / "cloud-sync"), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=True
    )
    return done.stdout


def post_photos(port: int, path: str, token: str, photos: dict[str, bytes]) -> tuple[int, Any]:
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
            for name, data in photos.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def serve(tmp_path: Path, processes: list[subprocess.Popen[str]], *options: str) -> tuple[int, str, Path]:
    """A migrated cloud with a signing key and an admin token, served with `options`; (port, token, log)."""
    db = f"sqlite:///{tmp_path / 'var' / 'cloud.db'}"
    cloud("migrate", "--db", db, cwd=tmp_path)
    cloud("keys", "rotate", "--db", db, cwd=tmp_path)
    token = cloud("token", "create", "--db", db, "--role", "admin", cwd=tmp_path).strip()
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "cloud-sync"), "serve", "--db", db, "--port", str(port), *options],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    processes.append(process)
    wait_until(lambda: "serving" in log.read_text() or process.poll() is not None, 60, "cloud-sync serve")
    assert process.poll() is None, log.read_text()
    assert accepts_connections("127.0.0.1", port)
    return port, token, log


def test_serve_with_the_models_enrols_and_keeps_its_json_log_clean(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port, token, log = serve(tmp_path, processes, "--models-dir", str(MODELS_DIR), "--log-format", "json")
    _, user = call(port, "/base_api/admin/user", token, {"name": "Anna"})
    status, answer = post_photos(
        port, f"/base_api/admin/user/{user['id']}/face", token, {"obama.jpg": face_photo("obama.jpg")}
    )
    assert (status, answer["accepted"]) == (200, 1), answer
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    messages = [r["message"] for r in records]
    serving = next(i for i, m in enumerate(messages) if m.startswith("serving "))
    ready = next(i for i, m in enumerate(messages) if m.startswith("face enrolment ready "))
    assert serving < ready
    assert "detector=yunet embedders=sface,dlib_resnet_v1 workers=1" in messages[ready]
    assert [r for r in records if r["level"] != "INFO"] == []


def test_serve_without_models_warns_once_and_serves_the_rest(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port, token, log = serve(tmp_path, processes)  # var/models under tmp_path: nothing fetched there
    _, user = call(port, "/base_api/admin/user", token, {"name": "Anna"})
    status, answer = post_photos(port, f"/base_api/admin/user/{user['id']}/face", token, {"a.jpg": b"x"})
    assert status == 503
    assert "run `robot-agent models fetch --models-dir var/models`" in answer["detail"]
    assert call(port, f"/base_api/admin/user/{user['id']}/faces", token)[0] == 200
    warnings = [line for line in log.read_text().splitlines() if " WARNING " in line]
    assert len(warnings) == 1, warnings
    assert "face enrolment is unavailable: var/models/manifest.json: no manifest" in warnings[0]
    assert "everything else is served" in warnings[0]
