"""The robot's local control API: aiohttp on a unix socket, for the engineers' UI and tools (decision 48).

Anyone who may open the socket (its owner and group: mode 0660) may read the status, the sync's state and
watch the live events; these hold no secrets, and the engineers' UI shows them before anyone logs in. Actions
(the gate, lights, buzzer, compartments, a sync now, a ticket verified by hand, an order, faces) and the
readings of faces and the catalogue need an engineer's session with their privilege (models/privileges.py),
read afresh from the synced `engineers` each time, so a privilege the cloud takes away is gone at the next
use. A session is opened by a login and password or by an auth card tapped within `card_login_s` of asking
(sessions.py); it ends after `session_idle_s` unused, at logout, or when the card that opened it is tapped
again. Actions that move hardware or touch biometric data also need the engineer's password once a session
(step-up: password logins have it at once). Five failed logins or step-ups in a row lock both for five
minutes, robot-wide. Every action that reached a session is audited, done or refused, as an
`engineer_action` outbox event and a live event; so is every login, failed login, step-up and lock. Actions
that move hardware are refused while the e-stop is pressed (423, naming it). Refusals come in this order:
401 no session, 403 a privilege missing, 403 step-up needed, 423 the e-stop. Sessions opened and ended are
live `session` events named by the session's id. Card UIDs, passwords, tokens, ticket codes and embeddings
are never logged, audited or published.

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
from sqlalchemy import Engine, func, select

from hardware.devices import CardTap
from hardware.errors import DeviceError, DeviceUnavailableError, EStopPressedError
from hardware.factory import Devices
from models.card_keys import card_key
from models.privileges import Privilege
from models.sync_events import EngineerAction
from robot_agent import selling
from robot_agent.api import bodies, engineers, openapi
from robot_agent.api.orders import OrderRefused, place_order
from robot_agent.api.sessions import (
    IDLE_S,
    LIMIT,
    LOCK_S,
    EndReason,
    LoginGuard,
    Session,
    Sessions,
    Via,
)
from robot_agent.clock import Clock
from robot_agent.errors import FacesError, RobotAgentError
from robot_agent.live import LiveEvents, Subscription
from robot_agent.status import RobotStatus
from robot_agent.store import activity, outbox, replica
from robot_agent.store.tables import (
    EnrolledFace,
    RejectedEvent,
    ReplicaStore,
    ReplicaStoreItem,
    ReplicaTrainStore,
)
from robot_agent.tickets import CheckMethod, TicketDesk

log = logging.getLogger(__name__)

SOCKET_MODE: Final = 0o660
NOBODY: Final = uuid.UUID(int=0)  # the engineer of an audited login failure that names none
MAX_DETAIL: Final = 255
MAX_BODY: Final = 48 * 1024 * 1024  # face photos, base64
STREAM_CHECK_S: Final = 5.0  # how often a quiet event stream checks that its watcher is still there
SWEEP_S: Final = 5.0  # how often idle sessions are looked for (their "session" event comes this late at most)
DEAD_LETTERS_SHOWN: Final = 100
STEP_UP_DETAIL: Final = "this action needs your password once a session (step-up)"

_FACES = EnrolledFace.__table__  # type: ignore[attr-defined]
_REJECTED = RejectedEvent.__table__  # type: ignore[attr-defined]
_STORES = ReplicaStore.__table__  # type: ignore[attr-defined]
_ITEMS = ReplicaStoreItem.__table__  # type: ignore[attr-defined]
_TRAIN_STORES = ReplicaTrainStore.__table__  # type: ignore[attr-defined]


class FaceActions(Protocol):
    """What the API needs of the robot's faces (robot_agent/faces/), when the robot has them."""

    async def enrol(self, user_id: uuid.UUID, images: list[bytes]) -> list[dict[str, Any]]:
        """Enrol each photo through the quality gate; per photo, the face enrolled or why it was refused."""
        ...

    async def delete(self, user_id: uuid.UUID) -> int:
        """Delete every face of a passenger (database, index and its file); how many went."""
        ...

    async def capture(
        self,
        user_id: uuid.UUID,
        count: int,
        timeout_s: float,
        progress: Callable[[dict[str, Any]], None],
    ) -> list[dict[str, Any]]:
        """Enrol up to `count` faces from the running camera within `timeout_s`: per frame judged, `result`
        in plain words and the face's id or the gate's reason, also handed to `progress`; FacesError when the
        camera is off or gives no frame."""
        ...


@dataclass(frozen=True)
class SyncLink:
    """What the agent knows of its sync beyond the database: the link, the last ack, when each scope last
    had a change applied (wall ms; since the agent started)."""

    online: bool
    last_ack_ms: int | None
    applied_ms: dict[str, int]


class ApiError(RobotAgentError):
    """An answer with an error status and `{"detail": ...}`."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}  # more fields of the body (`step_up`)


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
    hardware: bool = False  # refused while the e-stop is pressed; needs step-up
    step_up: bool = False  # needs step-up (besides hardware): biometric data
    params: tuple[tuple[str, Any], ...] = ()
    errors: tuple[int, ...] = field(default=())

    @property
    def needs_step_up(self) -> bool:
        return self.hardware or self.step_up

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
    so a restarted API is a new LocalApi with a new `devices.card_reader.taps()`; a tap of the card that
    opened a session ends it. `card_pepper`: the fleet's card key (engineers.load_card_pepper), None to log in
    by password only. `faces`: None when the robot has none (faces.MatcherFaces otherwise). `sync_link`: the
    link's state, last ack and cursors' times for GET /sync (None: offline, not known). `monotonic` and `wall`
    are injectable for tests (sessions and the lock; audited times).
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
        sync_link: Callable[[], SyncLink] | None = None,
        clock: Clock | None = None,
        session_idle_s: float = IDLE_S,
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
        self._sync_link = sync_link
        self._clock = clock or Clock()
        self._card_login_s = card_login_s
        self._wall = wall
        self.sessions = Sessions(idle_s=session_idle_s, monotonic=monotonic, on_end=self._session_ended)
        self.sweep_s = SWEEP_S
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
        tasks: list[asyncio.Task[None]] = []
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
            log.info("local API listening socket=%s", self.socket_path)
            self.listening.set()
            tasks.append(asyncio.create_task(self._sweep_sessions(), name="api-sessions"))
            if self._card_taps is not None:
                tasks.append(asyncio.create_task(self._read_taps(self._card_taps), name="api-card-taps"))
            await asyncio.Future()  # until cancelled
        finally:
            self.listening.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
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

    async def _sweep_sessions(self) -> None:
        """End idle sessions as they pass `session_idle_s`, not only when the API is next used, so that their
        "session" event comes in time."""
        while True:
            await asyncio.sleep(self.sweep_s)
            self.sessions.expire()

    def _session_ended(self, session: Session, reason: EndReason) -> None:
        log.info("engineer session ended id=%s reason=%s", session.id, reason)
        self._live.publish("session", {"id": session.id, "state": "ended", "reason": reason})

    async def _read_taps(self, taps: AsyncIterator[CardTap]) -> None:
        try:
            async for tap in taps:
                waiting = self._card_wait
                if waiting is not None and not waiting.done():
                    waiting.set_result(tap)
                    self._live.publish("card_tap", {"reader": tap.reader, "for": "login"})
                    continue
                ended = (
                    self.sessions.close_card(card_key(self._pepper, tap.uid.value))
                    if self._pepper is not None
                    else []
                )
                self._live.publish("card_tap", {"reader": tap.reader, "for": "logout" if ended else None})
                for session in ended:
                    await self._audit(session.engineer_id, "logout", "done: card tapped again")
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
            if route.privilege is not None:  # a reading that needs a privilege: refused, not audited
                assert session is not None
                engineer = await self._engineer_now(route, session)
                if route.privilege not in engineer.privileges:
                    raise ApiError(403, self._lacks(route, engineer))
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
        engineer = await self._engineer_now(route, session, audit=True)
        if route.privilege not in engineer.privileges:
            await self._audit(engineer.id, route.name, f"refused: needs the {route.privilege.name} privilege")
            raise ApiError(403, self._lacks(route, engineer))
        if route.needs_step_up and not session.stepped_up:
            await self._audit(engineer.id, route.name, "refused: needs step-up")
            raise ApiError(403, STEP_UP_DETAIL, extra={"step_up": True})
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
        except FacesError as err:
            await self._audit(engineer.id, route.name, f"refused: {err}")
            raise ApiError(503, f"{route.name} refused: {err}") from err
        await self._audit(engineer.id, route.name, f"done: {detail}")
        return _answer(result)

    async def _engineer_now(self, route: Route, session: Session, audit: bool = False) -> engineers.Engineer:
        """The session's engineer as the robot knows them now (privileges refreshed into the session); an
        engineer no longer known ends their sessions (401)."""
        engineer = await asyncio.to_thread(engineers.by_id, self._store, session.engineer_id)
        if engineer is None:
            self.sessions.close_engineer(session.engineer_id)
            if audit:
                await self._audit(session.engineer_id, route.name, "refused: engineer no longer known here")
            raise ApiError(401, "this engineer is no longer known to the robot: the session is closed")
        session.privileges = engineer.privileges
        return engineer

    @staticmethod
    def _lacks(route: Route, engineer: engineers.Engineer) -> str:
        assert route.privilege is not None
        return f"{route.name} needs the {route.privilege.name} privilege, which {engineer.login} lacks"

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

    async def _failed(self, action: str, engineer_id: uuid.UUID | None, why: str) -> None:
        """A failed login or step-up: audited, counted, and the lock when it is the `limit`th."""
        await self._audit(engineer_id or NOBODY, action, f"failed: {why}")
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
            log.warning("engineer %s failed failures=%d", action, self.guard.failures)

    async def _opened(
        self, engineer: engineers.Engineer, via: Via, card: str | None = None
    ) -> bodies.SessionOut:
        self.guard.succeeded()
        token, session = self.sessions.open(
            engineer.id, engineer.login, engineer.privileges, via, stepped_up=via == "password", card=card
        )
        await self._audit(engineer.id, f"login.{via}", "done")
        log.info("engineer logged in via=%s engineer=%s session=%s", via, engineer.id, session.id)
        self._live.publish("session", {"id": session.id, "state": "opened", "via": via})
        return self._session_out(session, token)

    def _session_out(self, session: Session, token: str | None = None) -> bodies.SessionOut:
        return bodies.SessionOut(
            token=token,
            id=session.id,
            stepped_up=session.stepped_up,
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
                    "login.password",
                    engineer_id,
                    "unknown login" if engineer_id is None else "wrong password",
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
                await self._failed("login.card", None, "unknown card")
                raise ApiError(401, "this card is not an engineer's card on this robot")
            return await self._opened(engineer, "card", card_key(self._pepper, tap.uid.value))

    async def _step_up(self, call: Call) -> bodies.SessionOut:
        """The engineer's password once a session: checked as a login is, and counted with failed logins."""
        session = call.session
        assert session is not None
        body: bodies.StepUp = call.body
        async with self._login_lock:
            self._check_lock()
            right = await asyncio.to_thread(
                engineers.password_matches, self._store, session.engineer_id, body.password
            )
            if right is None:
                self.sessions.close_engineer(session.engineer_id)
                raise ApiError(401, "this engineer is no longer known to the robot: the session is closed")
            if not right:
                await self._failed("session.step_up", session.engineer_id, "wrong password")
                raise ApiError(401, "wrong password: the session goes on without step-up")
            self.guard.succeeded()
            session.stepped_up = True
        await self._audit(session.engineer_id, "session.step_up", "done")
        log.info("engineer stepped up session=%s", session.id)
        return self._session_out(session)

    async def _session_show(self, call: Call) -> bodies.SessionOut:
        assert call.session is not None
        return self._session_out(call.session)

    async def _logout(self, call: Call) -> bodies.Done:
        assert call.session is not None
        assert call.token is not None
        self.sessions.close(call.token, "logged out")
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

    async def _face_capture(self, call: Call) -> tuple[BaseModel, str]:
        faces = self._face_actions()
        body: bodies.FaceCapture = call.body
        user_id: uuid.UUID = call.path["user_id"]
        done = 0

        def progress(result: dict[str, Any]) -> None:
            nonlocal done
            done += 1 if "face_id" in result else 0
            self._live.publish(
                "enrolment",
                {
                    "user_id": str(user_id),
                    "done": done,
                    "of": body.count,
                    "frame": result.get("frame"),
                    "result": result.get("result"),
                    "reason": result.get("reason"),
                },
            )

        results = await faces.capture(user_id, body.count, body.timeout_s, progress)
        enrolled = sum(1 for r in results if "face_id" in r)
        out = bodies.FacesOut(user_id=user_id, results=results)
        return out, f"{enrolled} of {body.count} faces enrolled from {len(results)} frames for user {user_id}"

    async def _faces_list(self, _call: Call) -> bodies.FaceList:
        def read() -> list[Any]:
            newest = func.max(_FACES.c.created_at)
            with self._store.connect() as conn:
                return list(
                    conn.execute(
                        select(_FACES.c.user_id, _FACES.c.source, func.count(), newest)
                        .group_by(_FACES.c.user_id, _FACES.c.source)
                        .order_by(newest.desc(), _FACES.c.user_id)
                    )
                )

        rows = await asyncio.to_thread(read)
        groups = [
            bodies.FaceGroup(user_id=user, source=source, count=count, enrolled_at=_iso(at))
            for user, source, count, at in rows
        ]
        return bodies.FaceList(faces=groups, total=sum(g.count for g in groups))

    async def _catalogue(self, _call: Call) -> bodies.CatalogueOut:
        def read() -> bodies.CatalogueOut:
            train = self._tickets.assignment().train_number
            with self._store.connect() as conn:
                serving = select(_TRAIN_STORES.c.store_id).where(_TRAIN_STORES.c.train_number == train)
                stores = conn.execute(
                    select(_STORES.c.id, _STORES.c.name)
                    .where(_STORES.c.id.in_(serving))
                    .order_by(_STORES.c.name, _STORES.c.id)
                ).all()
                items = conn.execute(
                    select(
                        _ITEMS.c.id, _ITEMS.c.store_id, _ITEMS.c.name, _ITEMS.c.price_penny, _ITEMS.c.balance
                    )
                    .where(_ITEMS.c.store_id.in_([s.id for s in stores]))
                    .order_by(_ITEMS.c.name, _ITEMS.c.id)
                ).all()
            by_store: dict[uuid.UUID, list[bodies.CatalogueItem]] = {s.id: [] for s in stores}
            for item in items:
                by_store[item.store_id].append(
                    bodies.CatalogueItem(
                        id=item.id, name=item.name, price_penny=item.price_penny, balance=item.balance
                    )
                )
            return bodies.CatalogueOut(
                train_number=train,
                stores=[bodies.CatalogueStore(id=s.id, name=s.name, items=by_store[s.id]) for s in stores],
            )

        return await asyncio.to_thread(read)

    async def _sync_show(self, _call: Call) -> bodies.SyncOut:
        link = self._sync_link() if self._sync_link is not None else SyncLink(False, None, {})

        def read() -> tuple[outbox.Backlog, dict[str, int], list[Any], int]:
            with self._store.connect() as conn:
                backlog = outbox.backlog(conn, self._clock)
                cursors = replica.cursors(conn)
                dead = list(
                    conn.execute(
                        select(_REJECTED.c.seq, _REJECTED.c.type, _REJECTED.c.reason, _REJECTED.c.wall_ms)
                        .order_by(_REJECTED.c.seq.desc())
                        .limit(DEAD_LETTERS_SHOWN)
                    )
                )
                total = conn.execute(select(func.count()).select_from(_REJECTED)).scalar_one()
            return backlog, cursors, dead, int(total)

        backlog, cursors, dead, total = await asyncio.to_thread(read)
        return bodies.SyncOut(
            online=link.online,
            outbox=bodies.OutboxOut(
                depth=backlog.events,
                in_flight=backlog.in_flight,
                oldest_age_s=None if backlog.oldest_age_ms is None else backlog.oldest_age_ms / 1000,
                last_ack_at=_iso_ms(link.last_ack_ms),
            ),
            cursors=[
                bodies.CursorOut(scope=scope, cursor=cursor, at=_iso_ms(link.applied_ms.get(scope)))
                for scope, cursor in sorted(cursors.items())
            ],
            dead_letters=[
                bodies.DeadLetterOut(seq=d.seq, type=d.type, reason=d.reason, at=_iso_ms(d.wall_ms) or "")
                for d in dead
            ],
            dead_letters_total=total,
        )

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
                "GET",
                "/sync",
                "sync",
                "How the robot's sync stands",
                "reading",
                self._sync_show,
                response=bodies.SyncOut,
                description="The outbox (depth, in flight, the oldest event's age, the last ack), the "
                "down-sync cursor of each scope and when it last moved, and the events the cloud "
                "dead-lettered. No session needed.",
            ),
            Route(
                "GET",
                "/faces",
                "faces",
                "The faces enrolled on the robot",
                "reading",
                self._faces_list,
                response=bodies.FaceList,
                needs_session=True,
                privilege=Privilege.FACES,
                errors=(401, 403),
                description="Per passenger and source, how many faces and when the newest was enrolled; "
                "never an embedding. Not audited.",
            ),
            Route(
                "GET",
                "/catalogue",
                "catalogue",
                "The stores serving the robot's train",
                "reading",
                self._catalogue,
                response=bodies.CatalogueOut,
                needs_session=True,
                privilege=Privilege.SALES,
                errors=(401, 403),
                description="From the robot's down-synced copy: the stores the `train_stores` rows put on "
                "the train the robot serves now, with their items, prices and stock. Not audited.",
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
                "POST",
                "/session/step-up",
                "session.step_up",
                "Give the password once a session (step-up)",
                "session",
                self._step_up,
                body=bodies.StepUp,
                response=bodies.SessionOut,
                needs_session=True,
                errors=(401, 429),
                description="Actions that move hardware or touch biometric data need it once a session; a "
                "password login has it at once. A wrong password is a 401 and counts with failed logins "
                "towards the lock (429).",
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
                step_up=True,
                params=(("user_id", uuid.UUID),),
                errors=(401, 403, 503),
            ),
            Route(
                "POST",
                "/actions/faces/{user_id}/capture",
                "face.capture",
                "Enrol a passenger's face from the camera",
                "actions",
                self._face_capture,
                body=bodies.FaceCapture,
                response=bodies.FacesOut,
                needs_session=True,
                action=True,
                privilege=Privilege.FACES,
                step_up=True,
                params=(("user_id", uuid.UUID),),
                errors=(401, 403, 503),
                description="Takes the running camera's frames, each through the quality gate, until `count` "
                "faces are enrolled or `timeout_s` has passed; after each frame a live `enrolment` event "
                "(`user_id`, `done`, `of`, `frame`, `result` in plain words, `reason`). Per frame the "
                "answer holds `result` and the face's id or the gate's `reason` and `detail`. 503 when the "
                "camera or face matching is not running, or no frame came.",
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
                step_up=True,
                params=(("user_id", uuid.UUID),),
                errors=(401, 403, 503),
            ),
        ]


def _iso(at: dt.datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.isoformat()


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else _iso(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))


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
        return web.json_response({"detail": err.detail, **err.extra}, status=err.status, headers=err.headers)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return web.json_response({"detail": err.reason}, status=err.status)
    except Exception:
        log.exception("local API: unhandled error method=%s path=%s", request.method, request.path)
        return web.json_response({"detail": "Internal Server Error"}, status=500)
