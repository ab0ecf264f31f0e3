"""The robot's local control API: aiohttp on a unix socket, for the engineers' UI and tools (decision 48).

Anyone who may open the socket (its owner and group: mode 0660) may read the status and watch the live
events; these hold no secrets, and the engineers' UI shows them before anyone logs in. Actions (the gate,
lights, buzzer, compartments, a sync now, a ticket verified by hand, an order, faces) need an engineer's
session with the action's privilege (models/privileges.py), read afresh from the synced `engineers` at each
action, so a privilege the cloud takes away is gone at the next action. A session is opened by a login and
password or by an auth card tapped within `card_login_s` of asking (sessions.py); five failed logins in a row
lock logging in for five minutes, robot-wide. Every action that reached a session is audited, done or
refused, as an `engineer_action` outbox event and a live event; so is every login, failed login and lock.
Actions that move hardware are refused while the e-stop is pressed (423, naming it). Card UIDs, passwords,
tokens and ticket codes are never logged or audited.

The event stream is NDJSON: one JSON event per line, as LiveEvents numbers them (`after` resumes).
The API describes itself at GET /openapi.json.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
import math
import os
import socket
import stat
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, Final, Protocol

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import Engine

from hardware.devices import CardTap
from hardware.errors import DeviceError, DeviceUnavailableError, EStopPressedError
from hardware.factory import Devices
from models.privileges import Privilege
from models.sync_events import EngineerAction
from robot_agent import selling
from robot_agent.api import bodies, engineers, openapi
from robot_agent.api.orders import OrderRefused, place_order
from robot_agent.api.sessions import LIMIT, LOCK_S, LoginGuard, Session, Sessions, Via
from robot_agent.clock import Clock
from robot_agent.errors import RobotAgentError
from robot_agent.live import LiveEvents, Subscription
from robot_agent.status import RobotStatus
from robot_agent.store import activity
from robot_agent.tickets import CheckMethod, TicketDesk

log = logging.getLogger(__name__)

SOCKET_MODE: Final = 0o660
NOBODY: Final = uuid.UUID(int=0)  # the engineer of an audited login failure that names none
MAX_DETAIL: Final = 255
MAX_BODY: Final = 48 * 1024 * 1024  # face photos, base64
STREAM_CHECK_S: Final = 5.0  # how often a quiet event stream checks that its watcher is still there


class FaceActions(Protocol):
    """What the API needs of the robot's faces (robot_agent/faces/), when the robot has them."""

    async def enrol(self, user_id: uuid.UUID, images: list[bytes]) -> list[dict[str, Any]]:
        """Enrol each photo through the quality gate; per photo, the face enrolled or why it was refused."""
        ...

    async def delete(self, user_id: uuid.UUID) -> int:
        """Delete every face of a passenger (database, index and its file); how many went."""
        ...


class ApiError(RobotAgentError):
    """An answer with an error status and `{"detail": ...}`."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class InvalidInput(RobotAgentError):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__("invalid input")
        self.items = items


@dataclass
class Call:
    request: web.Request
    body: Any
    query: Any
    path: dict[str, Any]
    session: Session | None
    token: str | None


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  # the operation's id; for an action, what is audited
    summary: str
    tag: str
    handler: Handler
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    media_type: str = "application/json"
    needs_session: bool = False
    action: bool = False  # audited; needs `privilege`
    privilege: Privilege | None = None
    hardware: bool = False  # refused while the e-stop is pressed
    params: tuple[tuple[str, Any], ...] = ()
    errors: tuple[int, ...] = field(default=())

    @property
    def path_params(self) -> dict[str, dict[str, Any]]:
        return {name: TypeAdapter(kind).json_schema() for name, kind in self.params}


CompartmentIndex = Annotated[int, Field(ge=0, le=7)]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _items(errors: list[ErrorDetails], *prefix: str | int) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]


class LocalApi:
    """See the module. Give it what the agent already has; `run()` serves until cancelled.

    `card_taps`: the card reader's taps (the API is their one reader: a tap while a card login waits logs
    in, any other is published as a "card_tap" event without its UID); one `run()` reads them to their end,
    so a restarted API is a new LocalApi with a new `devices.card_reader.taps()`. `card_pepper`: the fleet's
    card key (engineers.load_card_pepper), None to log in by password only. `faces`: None when the robot has
    none (faces.MatcherFaces otherwise). `monotonic` and `wall` are injectable for tests (sessions and the
    lock; audited times).
    """

    def __init__(
        self,
        *,
        socket_path: Path,
        status: RobotStatus,
        live: LiveEvents,
        store: Engine,
        devices: Devices,
        tickets: TicketDesk,
        sync_now: Callable[[], Awaitable[object]],
        card_taps: AsyncIterator[CardTap] | None = None,
        card_pepper: bytes | None = None,
        faces: FaceActions | None = None,
        clock: Clock | None = None,
        session_idle_s: float = 900.0,
        card_login_s: float = 20.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.socket_path = socket_path
        self._status = status
        self._live = live
        self._store = store
        self._devices = devices
        self._tickets = tickets
        self._sync_now = sync_now
        self._card_taps = card_taps
        self._pepper = card_pepper
        self._faces = faces
        self._clock = clock or Clock()
        self._card_login_s = card_login_s
        self._wall = wall
        self.sessions = Sessions(idle_s=session_idle_s, monotonic=monotonic)
        self.guard = LoginGuard(limit=LIMIT, lock_s=LOCK_S, monotonic=monotonic)
        self._login_lock = asyncio.Lock()
        self._card_wait: asyncio.Future[CardTap] | None = None
        self._streams: set[Subscription] = set()
        self.streams_ended = asyncio.Event()  # set whenever the last stream ends (tests wait on it)
        self.stream_check_s = STREAM_CHECK_S
        self.routes = self._routes()
        self.listening = asyncio.Event()  # set once the socket accepts connections
        status.add_source("api", self._status_source)

    # -- serving ---------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors], client_max_size=MAX_BODY)
        for route in self.routes:
            app.router.add_route(route.method, route.path, self._endpoint(route))
        app.router.add_get("/openapi.json", self._openapi)
        return app

    def document(self) -> dict[str, Any]:
        return openapi.document(
            self.routes,
            title="railbot robot local API",
            version=version("railbot"),
            description=(__doc__ or "").strip(),
        )

    async def run(self) -> None:
        """Serve on the socket until cancelled; the socket file is removed at exit."""
        sock = self._bind()
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        taps: asyncio.Task[None] | None = None
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
            log.info("local API listening socket=%s", self.socket_path)
            self.listening.set()
            if self._card_taps is not None:
                taps = asyncio.create_task(self._read_taps(self._card_taps), name="api-card-taps")
            await asyncio.Future()  # until cancelled
        finally:
            self.listening.clear()
            if taps is not None:
                taps.cancel()
                await asyncio.gather(taps, return_exceptions=True)
            for subscription in list(self._streams):
                subscription.close()
            await runner.cleanup()
            sock.close()
            self._unlink(sock)

    def _bind(self) -> socket.socket:
        """A listening-to-be socket at `socket_path`, mode 0660 before anyone can connect; a stale socket
        file (nobody listening) is replaced, anything else there is refused."""
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise RobotAgentError(
                    f"{path} exists and is not a socket: remove it or set another [api] socket"
                )
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)
            else:
                raise RobotAgentError(f"another process serves {path}: is the agent already running?")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            os.chmod(path, SOCKET_MODE)  # before listen(): nobody connects until then
        except OSError as err:
            sock.close()
            raise RobotAgentError(f"cannot listen on {path}: {err.strerror or err}") from err
        sock.setblocking(False)
        self._bound = os.stat(path).st_ino
        return sock

    def _unlink(self, _sock: socket.socket) -> None:
        try:
            if os.stat(self.socket_path).st_ino == self._bound:
                self.socket_path.unlink()
        except OSError:
            pass

    async def _read_taps(self, taps: AsyncIterator[CardTap]) -> None:
        try:
            async for tap in taps:
                waiting = self._card_wait
                if waiting is not None and not waiting.done():
                    waiting.set_result(tap)
                    self._live.publish("card_tap", {"reader": tap.reader, "for": "login"})
                else:
                    self._live.publish("card_tap", {"reader": tap.reader, "for": None})
            log.error("the card reader's taps ended: card login is off until the local API restarts")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.error("the card reader failed: card login is off until the local API restarts: %s", err)
        self._card_taps = None

    def _status_source(self) -> dict[str, Any]:
        """The API's part of the robot's status: open sessions and the login lock (never a token)."""
        return {
            "sessions": len(self.sessions),
            "login_failures": self.guard.failures,
            "logins_locked_for_s": math.ceil(self.guard.locked_for()),
        }

    # -- the request pipeline ----------------------------------------------------------------------------

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            token = session = None
            if route.needs_session:
                token = _bearer(request)
                session = self.sessions.get(token) if token else None
                if session is None:
                    raise ApiError(
                        401,
                        "log in first (POST /session or /session/card), then send Authorization: Bearer"
                        " TOKEN",
                        {"WWW-Authenticate": "Bearer"},
                    )
            if route.action:
                assert session is not None
                return await self._act(route, request, session, token)
            call = await self._call(route, request, session, token)
            return _answer(await route.handler(call))

        return endpoint

    async def _call(
        self, route: Route, request: web.Request, session: Session | None, token: str | None
    ) -> Call:
        errors: list[dict[str, Any]] = []
        path: dict[str, Any] = {}
        for name, kind in route.params:
            try:
                path[name] = TypeAdapter(kind).validate_python(request.match_info[name])
            except ValidationError as err:
                errors += _items(err.errors(include_url=False), "path", name)
        query = None
        if route.query is not None:
            try:
                query = route.query.model_validate(dict(request.query))
            except ValidationError as err:
                errors += _items(err.errors(include_url=False), "query")
        body = None
        if route.body is not None:
            raw = await request.read()
            try:
                body = route.body.model_validate_json(raw or b"{}")
            except ValidationError as err:
                errors += _items(err.errors(include_url=False), "body")
        if errors:
            raise InvalidInput(errors)
        return Call(request, body, query, path, session, token)

    async def _act(
        self, route: Route, request: web.Request, session: Session, token: str | None
    ) -> web.StreamResponse:
        """An action: the engineer as known now, the privilege, the input, the e-stop, then the action;
        audited whatever the outcome."""
        assert route.privilege is not None
        engineer = await asyncio.to_thread(engineers.by_id, self._store, session.engineer_id)
        if engineer is None:
            self.sessions.close_engineer(session.engineer_id)
            await self._audit(session.engineer_id, route.name, "refused: engineer no longer known here")
            raise ApiError(401, "this engineer is no longer known to the robot: the session is closed")
        session.privileges = engineer.privileges
        if route.privilege not in engineer.privileges:
            missing = route.privilege.name
            await self._audit(engineer.id, route.name, f"refused: needs the {missing} privilege")
            raise ApiError(403, f"{route.name} needs the {missing} privilege, which {engineer.login} lacks")
        try:
            call = await self._call(route, request, session, token)
        except InvalidInput:
            await self._audit(engineer.id, route.name, "refused: invalid input")
            raise
        if route.hardware and self._estop_pressed():
            await self._audit(engineer.id, route.name, "refused: the e-stop is pressed")
            raise ApiError(423, f"{route.name} refused: the e-stop is pressed (release it first)")
        try:
            result, detail = await route.handler(call)
        except ApiError as err:
            await self._audit(engineer.id, route.name, f"refused: {err.detail}")
            raise
        except EStopPressedError as err:
            await self._audit(engineer.id, route.name, "refused: the e-stop is pressed")
            raise ApiError(423, f"{route.name} refused: {err}") from err
        except DeviceUnavailableError as err:
            await self._audit(engineer.id, route.name, f"failed: {err}")
            raise ApiError(503, f"{route.name} failed: {err}") from err
        except DeviceError as err:
            await self._audit(engineer.id, route.name, f"failed: {err}")
            raise ApiError(502, f"{route.name} failed: {err}") from err
        await self._audit(engineer.id, route.name, f"done: {detail}")
        return _answer(result)

    def _estop_pressed(self) -> bool:
        return self._status.estop_pressed or self._devices.estop.pressed

    async def _audit(self, engineer_id: uuid.UUID, action: str, detail: str) -> None:
        """The `engineer_action` outbox event and its live event. `detail` names no secret (callers')."""
        detail = detail.replace("\x00", "")[:MAX_DETAIL]
        event = EngineerAction(engineer_id=engineer_id, action=action, detail=detail, at=self._wall())

        def write() -> int:
            with self._store.begin() as conn:
                return activity.record(conn, event, self._clock)

        await asyncio.to_thread(write)
        self._live.publish(
            "engineer_action", {"engineer_id": str(engineer_id), "action": action, "detail": detail}
        )

    # -- logging in ----------------------------------------------------------------------------------------

    def _check_lock(self) -> None:
        left = self.guard.locked_for()
        if left > 0:
            seconds = math.ceil(left)
            raise ApiError(
                429,
                f"logins are locked for {seconds} s more after {self.guard.limit} failed ones",
                {"Retry-After": str(seconds)},
            )

    async def _failed(self, via: Via, engineer_id: uuid.UUID | None, why: str) -> None:
        await self._audit(engineer_id or NOBODY, f"login.{via}", f"failed: {why}")
        if self.guard.failed():
            log.warning(
                "engineer logins locked for %d s after %d failed ones", self.guard.lock_s, self.guard.limit
            )
            await self._audit(
                NOBODY,
                "login.locked",
                f"{self.guard.limit} failed logins: locked for {self.guard.lock_s:g} s",
            )
        else:
            log.warning("engineer login failed via=%s failures=%d", via, self.guard.failures)

    async def _opened(self, engineer: engineers.Engineer, via: Via) -> bodies.SessionOut:
        self.guard.succeeded()
        token, session = self.sessions.open(engineer.id, engineer.login, engineer.privileges, via)
        await self._audit(engineer.id, f"login.{via}", "done")
        log.info("engineer logged in via=%s engineer=%s", via, engineer.id)
        return self._session_out(session, token)

    def _session_out(self, session: Session, token: str | None = None) -> bodies.SessionOut:
        return bodies.SessionOut(
            token=token,
            engineer_id=session.engineer_id,
            login=session.login,
            privileges=session.privileges.names(),
            via=session.via,
            expires_in_s=round(self.sessions.expires_in(session), 1),
        )

    async def _login_password(self, call: Call) -> bodies.SessionOut:
        body: bodies.PasswordLogin = call.body
        async with self._login_lock:  # one check at a time: the count cannot be outrun
            self._check_lock()
            engineer, engineer_id = await asyncio.to_thread(
                engineers.by_password, self._store, body.login, body.password
            )
            if engineer is None:
                await self._failed(
                    "password", engineer_id, "unknown login" if engineer_id is None else "wrong password"
                )
                raise ApiError(401, "wrong login or password")
            return await self._opened(engineer, "password")

    async def _login_card(self, call: Call) -> bodies.SessionOut:
        self._check_lock()
        if self._pepper is None:
            raise ApiError(503, "card login is off: this robot has no card key ([api] card_key_file)")
        if self._card_taps is None:
            raise ApiError(503, "card login is off: the card reader is not available")
        if self._card_wait is not None and not self._card_wait.done():
            raise ApiError(409, "another card login is waiting for a tap")
        waiting: asyncio.Future[CardTap] = asyncio.get_running_loop().create_future()
        self._card_wait = waiting
        self._live.publish("card_login", {"waiting_s": self._card_login_s})
        try:
            tap = await asyncio.wait_for(waiting, self._card_login_s)
        except TimeoutError:
            raise ApiError(408, f"no card was tapped within {self._card_login_s:g} s") from None
        finally:
            if self._card_wait is waiting:
                self._card_wait = None
        async with self._login_lock:
            self._check_lock()
            engineer = await asyncio.to_thread(engineers.by_card, self._store, self._pepper, tap.uid.value)
            if engineer is None:
                await self._failed("card", None, "unknown card")
                raise ApiError(401, "this card is not an engineer's card on this robot")
            return await self._opened(engineer, "card")

    async def _session_show(self, call: Call) -> bodies.SessionOut:
        assert call.session is not None
        return self._session_out(call.session)

    async def _logout(self, call: Call) -> bodies.Done:
        assert call.session is not None
        assert call.token is not None
        self.sessions.close(call.token)
        await self._audit(call.session.engineer_id, "logout", "done")
        return bodies.Done(action="logout", detail="done")

    # -- reading -------------------------------------------------------------------------------------------

    async def _status_show(self, _call: Call) -> web.StreamResponse:
        return web.json_response(await self._status.snapshot(), dumps=_dumps)

    async def _events(self, call: Call) -> web.StreamResponse:
        query: bodies.EventsQuery = call.query
        kinds = [k.strip() for k in query.kinds.split(",") if k.strip()] if query.kinds else None
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache"}
        )
        await response.prepare(call.request)
        subscription = self._live.subscribe(kinds, after=query.after)
        self._streams.add(subscription)
        watch = asyncio.create_task(self._close_when_gone(call.request, subscription))
        try:
            async with subscription:
                async for event in subscription:
                    await response.write(_dumps(event.as_json()).encode() + b"\n")
        except ConnectionError:  # the watcher went away while we wrote
            pass
        finally:
            watch.cancel()
            self._streams.discard(subscription)
            if not self._streams:
                self.streams_ended.set()
        return response

    async def _close_when_gone(self, request: web.Request, subscription: Subscription) -> None:
        """End a stream whose watcher hung up while no event came: aiohttp does not cancel the handler, and
        a quiet robot writes nothing that would fail, so a vanished watcher would keep its queue for ever."""
        while True:
            await asyncio.sleep(self.stream_check_s)
            transport = request.transport
            if transport is None or transport.is_closing():
                subscription.close()
                return

    async def _openapi(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.document())

    # -- actions -------------------------------------------------------------------------------------------

    async def _gate_pulse(self, call: Call) -> tuple[BaseModel, str]:
        body: bodies.GatePulse = call.body
        await self._devices.gate.pulse(body.ms)
        return _done("gate.pulse", f"gate opened for {body.ms} ms")

    async def _lights_test(self, call: Call) -> tuple[BaseModel, str]:
        body: bodies.LightsTest = call.body
        await self._devices.lights.show(body.light_pattern(), body.red, body.green, body.blue, body.ms)
        return _done("lights.test", f"{body.pattern} {body.red},{body.green},{body.blue} for {body.ms} ms")

    async def _buzzer_test(self, call: Call) -> tuple[BaseModel, str]:
        body: bodies.BuzzerTest = call.body
        await self._devices.buzzer.beep(body.freq_hz, body.ms)
        return _done("buzzer.test", f"{body.freq_hz} Hz for {body.ms} ms")

    async def _compartment_open(self, call: Call) -> tuple[BaseModel, str]:
        body: bodies.CompartmentOpen = call.body
        index = call.path["index"]
        await self._devices.compartments.unlock(index, body.ms)
        return _done("compartment.open", f"compartment {index} unlocked for {body.ms} ms")

    async def _sync(self, _call: Call) -> tuple[BaseModel, str]:
        await self._sync_now()
        return _done("sync.now", "sync asked")

    async def _verify_ticket(self, call: Call) -> tuple[BaseModel, str]:
        body: bodies.TicketCode = call.body
        outcome = await asyncio.to_thread(self._tickets.check, body.code, CheckMethod.TOKEN)
        self._live.publish("ticket_checked", outcome.as_json())
        ticket = outcome.ticket_id or "unreadable"
        return bodies.TicketCheckOut.model_validate(
            outcome.as_json()
        ), f"{outcome.verdict.value} ticket {ticket}"

    async def _order(self, call: Call) -> tuple[BaseModel, str]:
        body: bodies.OrderIn = call.body
        try:
            purchase_id, seq, compartment = await asyncio.to_thread(
                place_order,
                self._store,
                self._clock,
                body.store_id,
                body.user_id,
                body.items,
                self._wall(),
                body.compartment,
            )
        except OrderRefused as err:
            raise ApiError(err.status, err.detail) from err
        count = sum(line.count for line in body.items)
        self._live.publish(
            "purchase",
            {
                "purchase_id": str(purchase_id),
                "store_id": str(body.store_id),
                "items": count,
                "compartment": compartment,
            },
        )
        out = bodies.OrderOut(purchase_id=purchase_id, seq=seq, compartment=compartment)
        return out, f"purchase {purchase_id}, {count} items, compartment {compartment}"

    def _face_actions(self) -> FaceActions:
        if self._faces is None:
            raise ApiError(503, "faces are not set up on this robot (models, face key, [vision])")
        return self._faces

    async def _face_enrol(self, call: Call) -> tuple[BaseModel, str]:
        faces = self._face_actions()
        body: bodies.FacePhotos = call.body
        user_id: uuid.UUID = call.path["user_id"]
        images: list[bytes] = []
        for n, text in enumerate(body.images):
            try:
                images.append(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError) as err:
                raise InvalidInput(
                    [{"loc": ["body", "images", n], "msg": "not base64", "type": "value_error"}]
                ) from err
        results = await faces.enrol(user_id, images)
        enrolled = sum(1 for r in results if r.get("face_id"))
        out = bodies.FacesOut(user_id=user_id, results=results)
        return out, f"{enrolled} of {len(images)} photos enrolled for user {user_id}"

    async def _face_delete(self, call: Call) -> tuple[BaseModel, str]:
        faces = self._face_actions()
        user_id: uuid.UUID = call.path["user_id"]
        deleted = await faces.delete(user_id)
        return bodies.FacesOut(user_id=user_id, deleted=deleted), f"{deleted} faces of user {user_id} deleted"

    async def _orders(self, _call: Call) -> bodies.OrdersOut:
        def read() -> list[dict[str, Any]]:
            with self._store.connect() as conn:
                return selling.orders(conn)

        found = await asyncio.to_thread(read)
        return bodies.OrdersOut(orders=[bodies.OrderState.model_validate(o) for o in found])

    # -- the table -----------------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        hw = (401, 403, 423, 502, 503)
        return [
            Route(
                "GET",
                "/status",
                "status",
                "The robot's status",
                "reading",
                self._status_show,
                response=bodies.StatusOut,
                description="No session needed: whoever may open the socket may read it.",
            ),
            Route(
                "GET",
                "/events",
                "events",
                "The live event stream (NDJSON)",
                "reading",
                self._events,
                query=bodies.EventsQuery,
                response=bodies.EventOut,
                media_type="application/x-ndjson",
                description="One event a line, as they happen; `after` first sends the kept events after "
                "that seq; a watcher that falls behind reads a `dropped` event. No session needed.",
            ),
            Route(
                "GET",
                "/orders",
                "orders",
                "The robot's orders",
                "reading",
                self._orders,
                response=bodies.OrdersOut,
                needs_session=True,
                errors=(401,),
                description="The latest orders, newest first: compartment, state (placed, waiting, ready, "
                "delivered) and the conflicts the cloud found with each sale.",
            ),
            Route(
                "POST",
                "/session",
                "login.password",
                "Log in by login and password",
                "session",
                self._login_password,
                body=bodies.PasswordLogin,
                response=bodies.SessionOut,
                errors=(401, 429),
            ),
            Route(
                "POST",
                "/session/card",
                "login.card",
                "Log in by the next auth card tapped",
                "session",
                self._login_card,
                response=bodies.SessionOut,
                errors=(401, 408, 409, 429, 503),
                description="Waits for the next tap on the robot's card reader.",
            ),
            Route(
                "GET",
                "/session",
                "session",
                "The session",
                "session",
                self._session_show,
                response=bodies.SessionOut,
                needs_session=True,
                errors=(401,),
            ),
            Route(
                "DELETE",
                "/session",
                "logout",
                "Log out",
                "session",
                self._logout,
                response=bodies.Done,
                needs_session=True,
                errors=(401,),
            ),
            Route(
                "POST",
                "/actions/gate/pulse",
                "gate.pulse",
                "Open the gate for a while",
                "actions",
                self._gate_pulse,
                body=bodies.GatePulse,
                response=bodies.Done,
                needs_session=True,
                action=True,
                privilege=Privilege.GATE,
                hardware=True,
                errors=hw,
            ),
            Route(
                "POST",
                "/actions/lights/test",
                "lights.test",
                "Show a light pattern",
                "actions",
                self._lights_test,
                body=bodies.LightsTest,
                response=bodies.Done,
                needs_session=True,
                action=True,
                privilege=Privilege.HARDWARE,
                hardware=True,
                errors=hw,
            ),
            Route(
                "POST",
                "/actions/buzzer/test",
                "buzzer.test",
                "Sound the buzzer",
                "actions",
                self._buzzer_test,
                body=bodies.BuzzerTest,
                response=bodies.Done,
                needs_session=True,
                action=True,
                privilege=Privilege.HARDWARE,
                hardware=True,
                errors=hw,
            ),
            Route(
                "POST",
                "/actions/compartments/{index}/open",
                "compartment.open",
                "Unlock a compartment",
                "actions",
                self._compartment_open,
                body=bodies.CompartmentOpen,
                response=bodies.Done,
                needs_session=True,
                action=True,
                privilege=Privilege.COMPARTMENTS,
                hardware=True,
                params=(("index", CompartmentIndex),),
                errors=hw,
            ),
            Route(
                "POST",
                "/actions/sync",
                "sync.now",
                "Sync with the cloud now",
                "actions",
                self._sync,
                response=bodies.Done,
                needs_session=True,
                action=True,
                privilege=Privilege.SYNC,
                errors=(401, 403),
            ),
            Route(
                "POST",
                "/actions/tickets/verify",
                "ticket.verify",
                "Verify a ticket by hand",
                "actions",
                self._verify_ticket,
                body=bodies.TicketCode,
                response=bodies.TicketCheckOut,
                needs_session=True,
                action=True,
                privilege=Privilege.TICKETS,
                errors=(401, 403),
                description="Checked and recorded as the camera would (method `token`); a valid ticket "
                "is used up.",
            ),
            Route(
                "POST",
                "/actions/orders",
                "order.place",
                "Place an order for a passenger",
                "actions",
                self._order,
                body=bodies.OrderIn,
                response=bodies.OrderOut,
                needs_session=True,
                action=True,
                privilege=Privilege.SALES,
                errors=(401, 403, 404, 409),
            ),
            Route(
                "POST",
                "/actions/faces/{user_id}",
                "face.enrol",
                "Enrol a passenger's face",
                "actions",
                self._face_enrol,
                body=bodies.FacePhotos,
                response=bodies.FacesOut,
                needs_session=True,
                action=True,
                privilege=Privilege.FACES,
                params=(("user_id", uuid.UUID),),
                errors=(401, 403, 503),
            ),
            Route(
                "DELETE",
                "/actions/faces/{user_id}",
                "face.delete",
                "Delete a passenger's faces",
                "actions",
                self._face_delete,
                response=bodies.FacesOut,
                needs_session=True,
                action=True,
                privilege=Privilege.FACES,
                params=(("user_id", uuid.UUID),),
                errors=(401, 403, 503),
            ),
        ]


def _done(action: str, detail: str) -> tuple[BaseModel, str]:
    return bodies.Done(action=action, detail=detail), detail


def _answer(result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    assert isinstance(result, BaseModel)
    return web.Response(body=result.model_dump_json().encode(), content_type="application/json")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as JSON: ours, invalid input in FastAPI's shape (as the cloud's), aiohttp's own."""
    try:
        return await handler(request)
    except InvalidInput as err:
        return web.json_response({"detail": err.items}, status=422)
    except ApiError as err:
        return web.json_response({"detail": err.detail}, status=err.status, headers=err.headers)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return web.json_response({"detail": err.reason}, status=err.status)
    except Exception:
        log.exception("local API: unhandled error method=%s path=%s", request.method, request.path)
        return web.json_response({"detail": "Internal Server Error"}, status=500)
