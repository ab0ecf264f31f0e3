"""A migrated cloud database on each backend, and the cloud app served to an aiohttp test client."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient

from cloud_sync.db.migrate import upgrade
from cloud_sync.db.tables import Role
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT, CloudContext

T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> T:
    """Run blocking work that starts its own event loop (Alembic's env.py does) off the test's loop."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def migrated(url: str) -> str:
    in_thread(lambda: upgrade(url))
    return url


@dataclass
class Cloud:
    """A running cloud app with an admin token; helpers for the requests tests make most."""

    client: TestClient[Any, Any]
    admin: dict[str, str]

    @property
    def context(self) -> CloudContext:
        app = self.client.app
        assert app is not None
        context: CloudContext = app[CONTEXT]
        return context

    async def token(self, role: Role, **ids: Any) -> dict[str, str]:
        async with self.context.sessions() as session:
            token = await create_token(session, role, **ids)
        return {"Authorization": f"Bearer {token}"}

    async def ok(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """Make a request that must answer 200, and return its JSON."""
        response = await self.client.request(method, path, headers=headers or self.admin, **kwargs)
        text = await response.text()
        assert response.status == 200, f"{method} {path} -> {response.status}: {text}"
        return await response.json()

    async def store_with_token(self, name: str = "Buffet") -> tuple[str, dict[str, str]]:
        store = await self.ok(
            "POST",
            "/store_api/admin/store",
            json={"name": name, "description": "Snacks", "logo_url": "/s.png", "store_type": "SHOP"},
        )
        return store["id"], await self.token(Role.STORE, store_id=uuid.UUID(store["id"]))
