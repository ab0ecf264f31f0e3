"""JSON requests with a bearer token to a cloud-sync served as a process, for the end-to-end tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(
    port: int, path: str, token: str, body: dict[str, Any] | None = None, method: str | None = None
) -> tuple[int, Any]:
    """The status and JSON answer of a request (a POST when it has a body, else a GET, unless `method`)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def request(port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """The JSON answer of a request that must succeed."""
    status, answer = call(port, path, token, body, method)
    assert status < 400, f"{method} {path} -> {status}: {answer}"
    return answer
