"""The cloud's domain code raises domain errors (cloud_sync.errors); only the routing layer maps them to
HTTP."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cloud_sync.errors import Conflict, InvalidInput, NotFound, Unavailable
from cloud_sync.web.routing import domain_response

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["purchases", "tickets", "sales"])
def test_domain_modules_know_nothing_of_http(module: str) -> None:
    tree = ast.parse((ROOT / "cloud_sync" / "desks" / f"{module}.py").read_text())
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        )
    }
    assert not imported & {"cloud_sync.web.routing", "aiohttp", "aiohttp.web"}


def test_each_domain_error_is_answered_with_its_status_and_body() -> None:
    cases: list[tuple[NotFound | Conflict | Unavailable | InvalidInput, int, object, str | None]] = [
        (NotFound("item 1 not found"), 404, {"detail": "item 1 not found"}, None),
        (
            Conflict("item 1 (Tea): 2 wanted, 1 in stock"),
            409,
            {"detail": "item 1 (Tea): 2 wanted, 1 in stock"},
            None,
        ),
        (Unavailable("try again"), 503, {"detail": "try again"}, "1"),
        (
            InvalidInput(["body", "valid_until"], "would have expired"),
            422,
            {
                "detail": [
                    {"loc": ["body", "valid_until"], "msg": "would have expired", "type": "value_error"}
                ]
            },
            None,
        ),
    ]
    for error, status, body, retry_after in cases:
        response = domain_response(error)
        assert response.status == status
        assert response.text is not None
        assert json.loads(response.text) == body
        assert response.headers.get("Retry-After") == retry_after
