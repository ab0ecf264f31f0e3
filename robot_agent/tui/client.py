"""The engineers' UI's one way to the agent: an async client of the local control API (robot_agent/api/) over
its unix socket.

Every answer comes back as the API's own body model (robot_agent/api/bodies.py); every refusal as
`ApiRefusal(status, detail)`, with `step_up` when the API asks for the password once a session and
`retry_after` when logins are locked; an agent that is not there as `AgentUnreachable`. The client holds the
session's token and nothing else: no business logic, no retries (the screens decide what a refusal means).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from robot_agent.api import bodies
from robot_agent.errors import RobotAgentError

M = TypeVar("M", bound=BaseModel)

REQUEST_TIMEOUT_S = 15.0  # an ordinary call; a card login waits longer, for the tap (the API says 408)
CARD_LOGIN_TIMEOUT_S = 330.0  # past [api] card_login_s's upper bound (300 s): the API answers first


class ApiRefusal(RobotAgentError):
    """The API said no: its status and its `detail`, in plain words."""

    def __init__(
        self, status: int, detail: str, *, step_up: bool = False, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.step_up = step_up
        self.retry_after = retry_after


class AgentUnreachable(RobotAgentError):
    """Nobody answers on the socket: the agent is not running, or is (re)starting."""

    def __init__(self, socket_path: Path, why: str) -> None:
        super().__init__(f"no agent at {socket_path}: {why}")
        self.socket_path = socket_path
        self.why = why


class ApiClient:
    """See the module. Open it inside the event loop that uses it (`async with ApiClient(path)`)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.token: str | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = aiohttp.UnixConnector(path=str(self.socket_path))
            self._http = aiohttp.ClientSession("http://robot", connector=connector)
        return self._http

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        body: dict[str, Any] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> M:
        try:
            async with self._session().request(
                method,
                path,
                json=body,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise _refusal(response, raw)
        except (aiohttp.ClientConnectionError, TimeoutError) as err:
            raise AgentUnreachable(self.socket_path, _why(err)) from err
        try:
            return model.model_validate_json(raw)
        except ValidationError as err:
            raise ApiRefusal(response.status, f"the agent's answer was not understood: {err}") from err

    # -- reading, no session --------------------------------------------------------------------------------

    async def status(self) -> bodies.StatusOut:
        return await self._call("GET", "/status", bodies.StatusOut)

    async def sync(self) -> bodies.SyncOut:
        return await self._call("GET", "/sync", bodies.SyncOut)

    async def events(
        self, after: int | None = None, kinds: list[str] | None = None
    ) -> AsyncIterator[bodies.EventOut]:
        """The live events, one by one, until the agent ends the stream (or goes)."""
        params: dict[str, str] = {}
        if after is not None:
            params["after"] = str(after)
        if kinds:
            params["kinds"] = ",".join(kinds)
        try:
            async with self._session().get(
                "/events", params=params, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)
            ) as response:
                if response.status >= 400:
                    raise _refusal(response, await response.read())
                async for line in response.content:
                    if line.strip():
                        yield bodies.EventOut.model_validate_json(line)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as err:
            raise AgentUnreachable(self.socket_path, _why(err)) from err

    # -- the session ----------------------------------------------------------------------------------------

    async def login_password(self, login: str, password: str) -> bodies.SessionOut:
        session = await self._call(
            "POST", "/session", bodies.SessionOut, {"login": login, "password": password}
        )
        self.token = session.token
        return session

    async def login_card(self) -> bodies.SessionOut:
        """Waits for the next tap on the robot's card reader (the API answers 408 when none came)."""
        session = await self._call("POST", "/session/card", bodies.SessionOut, timeout_s=CARD_LOGIN_TIMEOUT_S)
        self.token = session.token
        return session

    async def step_up(self, password: str) -> bodies.SessionOut:
        return await self._call("POST", "/session/step-up", bodies.SessionOut, {"password": password})

    async def session(self) -> bodies.SessionOut:
        return await self._call("GET", "/session", bodies.SessionOut)

    async def logout(self) -> None:
        try:
            await self._call("DELETE", "/session", bodies.Done)
        finally:
            self.token = None

    # -- reading, with a session ----------------------------------------------------------------------------

    async def orders(self) -> bodies.OrdersOut:
        return await self._call("GET", "/orders", bodies.OrdersOut)

    async def faces(self) -> bodies.FaceList:
        return await self._call("GET", "/faces", bodies.FaceList)

    async def catalogue(self) -> bodies.CatalogueOut:
        return await self._call("GET", "/catalogue", bodies.CatalogueOut)

    # -- actions --------------------------------------------------------------------------------------------

    async def gate_pulse(self, ms: int = 1000) -> bodies.Done:
        return await self._call("POST", "/actions/gate/pulse", bodies.Done, {"ms": ms})

    async def lights_test(self) -> bodies.Done:
        return await self._call("POST", "/actions/lights/test", bodies.Done, {})

    async def buzzer_test(self) -> bodies.Done:
        return await self._call("POST", "/actions/buzzer/test", bodies.Done, {})

    async def compartment_open(self, index: int, ms: int = 10_000) -> bodies.Done:
        return await self._call("POST", f"/actions/compartments/{index}/open", bodies.Done, {"ms": ms})

    async def sync_now(self) -> bodies.Done:
        return await self._call("POST", "/actions/sync", bodies.Done)

    async def verify(self, code: str) -> bodies.TicketCheckOut:
        return await self._call("POST", "/actions/tickets/verify", bodies.TicketCheckOut, {"code": code})

    async def place_order(
        self, store_id: uuid.UUID, user_id: uuid.UUID, items: dict[uuid.UUID, int], compartment: int | None
    ) -> bodies.OrderOut:
        body: dict[str, Any] = {
            "store_id": str(store_id),
            "user_id": str(user_id),
            "items": [{"item_id": str(item), "count": count} for item, count in items.items()],
        }
        if compartment is not None:
            body["compartment"] = compartment
        return await self._call("POST", "/actions/orders", bodies.OrderOut, body)

    async def capture_faces(
        self, user_id: uuid.UUID, count: int = 5, timeout_s: float = 20
    ) -> bodies.FacesOut:
        return await self._call(
            "POST",
            f"/actions/faces/{user_id}/capture",
            bodies.FacesOut,
            {"count": count, "timeout_s": timeout_s},
            timeout_s=timeout_s + REQUEST_TIMEOUT_S,
        )

    async def delete_faces(self, user_id: uuid.UUID) -> bodies.FacesOut:
        return await self._call("DELETE", f"/actions/faces/{user_id}", bodies.FacesOut)


def _refusal(response: aiohttp.ClientResponse, raw: bytes) -> ApiRefusal:
    detail: Any = response.reason or "refused"
    step_up = False
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        detail = answer.get("detail", detail)
        step_up = answer.get("step_up") is True
    if isinstance(detail, list):  # invalid input: FastAPI's shape, one item per problem
        detail = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg', '')}"
            for item in detail
            if isinstance(item, dict)
        )
    retry = response.headers.get("Retry-After", "")
    return ApiRefusal(
        response.status, str(detail), step_up=step_up, retry_after=int(retry) if retry.isdigit() else None
    )


def _why(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "it did not answer in time"
    if isinstance(err, aiohttp.ClientConnectorError):
        return err.os_error.strerror or str(err.os_error)
    return str(err) or err.__class__.__name__
