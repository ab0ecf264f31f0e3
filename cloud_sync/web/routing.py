"""A small route registry for aiohttp: each route declares its path, query, body and response models.

The registry validates input with pydantic and answers bad input with FastAPI's 422 body (the seed's
clients are FastAPI clients), checks the bearer token's role, turns every error into JSON, and knows
enough about each route to write the OpenAPI document (cloud_sync/web/openapi.py). No maintained library
does this for aiohttp with OpenAPI 3.1 (shared/notes/api-facts.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import ContentEncodingError
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from cloud_sync.db.tables import Role
from cloud_sync.errors import Conflict, InvalidInput, NotFound, Unavailable
from models.store_api import NO_NUL

log = logging.getLogger(__name__)

B = TypeVar("B")
Q = TypeVar("Q")


class ErrorBody(BaseModel):
    """Any error but a validation error: `{"detail": "what went wrong"}`."""

    detail: str


class HTTPError(Exception):
    """Raised by a handler to answer with an error status and `{"detail": ...}`."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


class InvalidRequest(HTTPError):
    """A 422 found by a handler (beyond what the models check), in FastAPI's body shape."""

    def __init__(self, loc: list[str | int], msg: str, kind: str = "value_error") -> None:
        super().__init__(422, msg)
        self.items = [{"loc": loc, "msg": msg, "type": kind}]


# The domain's refusals (cloud_sync.errors) as HTTP statuses: the one place they are mapped.
DOMAIN_STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
    InvalidInput: 422,
}


def domain_response(err: NotFound | Conflict | Unavailable | InvalidInput) -> web.Response:
    """The answer to a domain refusal: `{"detail": ...}` with its status; FastAPI's 422 body for bad input; a
    503 says when to try again."""
    if isinstance(err, InvalidInput):
        return web.json_response({"detail": [{"loc": err.loc, "msg": err.msg, "type": err.kind}]}, status=422)
    headers = {"Retry-After": "1"} if isinstance(err, Unavailable) else None
    return web.json_response({"detail": str(err)}, status=DOMAIN_STATUS[type(err)], headers=headers)


class NoInput(BaseModel):
    """The query model of a route that takes no query parameters."""


@dataclass(frozen=True)
class Principal:
    """Who the bearer token belongs to."""

    token_id: uuid.UUID
    role: Role
    store_id: uuid.UUID | None = None
    robot_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Upload:
    """A `multipart/form-data` body of files sent as parts named `field`: at least one, at most `max_files`,
    each at most `max_bytes` (a bigger one is a 413, and the rest of the body is not read)."""

    field: str
    max_files: int
    max_bytes: int
    description: str = ""


@dataclass(frozen=True)
class UploadedFile:
    """One part of an upload: its file name as sent (None without one), and its bytes."""

    filename: str | None
    data: bytes


@dataclass
class Call(Generic[B, Q]):
    """One validated request, as a handler sees it."""

    request: web.Request
    path: dict[str, uuid.UUID]
    text: dict[str, str]
    query: Q
    body: B
    principal: Principal | None
    upload: Upload | None = None

    @property
    def app(self) -> web.Application:
        return self.request.app

    async def files(self) -> list[UploadedFile]:
        """The route's upload, read now: a handler decides when (after the checks that need no body)."""
        if self.upload is None:
            raise TypeError(f"{self.request.method} {self.request.path} takes no upload")
        return await read_upload(self.request, self.upload)

    def store_id(self) -> uuid.UUID:
        """The store a store token acts for."""
        if self.principal is None or self.principal.store_id is None:
            raise HTTPError(403, "this route acts for a store: use a store token")
        return self.principal.store_id


Handler = Callable[[Call[Any, Any]], Awaitable[BaseModel | web.StreamResponse]]
Authenticator = Callable[[web.Request, str], Awaitable[Principal | None]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    response: type[BaseModel] | None
    body: type[BaseModel] | None
    query: type[BaseModel]
    roles: frozenset[Role] | None
    errors: tuple[int, ...]
    media_type: str = "application/json"
    path_params: tuple[str, ...] = field(default=())
    text_params: tuple[str, ...] = field(default=())
    upload: Upload | None = None

    @property
    def takes_input(self) -> bool:
        return bool(
            self.body or self.upload or self.path_params or self.text_params or self.query.model_fields
        )


_UUID = TypeAdapter(uuid.UUID)
# Text path parameters (destination ids): what the OpenAPI document promises for them.
TEXT_PARAM_MAX = 256
TEXT_PARAM_SCHEMA = {"type": "string", "minLength": 1, "maxLength": TEXT_PARAM_MAX, "pattern": NO_NUL}


def _valid_text_param(value: str) -> bool:
    return 1 <= len(value) <= TEXT_PARAM_MAX and "\x00" not in value


def _error_items(errors: list[ErrorDetails], prefix: tuple[str | int, ...]) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]} for error in errors]


class Api:
    """The routes of one service; `install` adds them to an aiohttp app, `routes` feeds the OpenAPI writer."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        response: type[BaseModel] | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] = NoInput,
        roles: Collection[Role] | None = None,
        errors: tuple[int, ...] = (),
        media_type: str = "application/json",
        text_params: tuple[str, ...] = (),
        upload: Upload | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler; `roles=None` makes the route public. Path parameters are UUIDs, except
        those named in `text_params`. A route takes a JSON `body` or an `upload` (multipart files), not
        both."""
        if body is not None and upload is not None:
            raise ValueError(f"{method} {path}: a JSON body or an upload, not both")
        params = tuple(part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}"))
        params = tuple(p for p in params if p not in text_params)

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=tag,
                    response=response,
                    body=body,
                    query=query,
                    roles=frozenset(roles) if roles is not None else None,
                    errors=errors,
                    media_type=media_type,
                    path_params=params,
                    text_params=text_params,
                    upload=upload,
                )
            )
            return handler

        return register

    def install(self, app: web.Application, authenticate: Authenticator) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, _endpoint(route, authenticate))


def _endpoint(
    route: Route, authenticate: Authenticator
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = await _authorize(route, request, authenticate)
        errors: list[dict[str, Any]] = []
        path: dict[str, uuid.UUID] = {}
        for name in route.path_params:
            try:
                path[name] = _UUID.validate_python(request.match_info[name])
            except ValidationError as err:
                errors += _error_items(err.errors(include_url=False), ("path", name))
        text = {name: request.match_info[name] for name in route.text_params}
        for name, value in text.items():
            if not _valid_text_param(value):
                message = f"must be 1 to {TEXT_PARAM_MAX} characters, without NUL"
                errors.append({"loc": ["path", name], "msg": message, "type": "value_error"})
        query: BaseModel | None = None
        try:
            query = route.query.model_validate(dict(request.query))
        except ValidationError as err:
            errors += _error_items(err.errors(include_url=False), ("query",))
        body: BaseModel | None = None
        if route.body is not None:
            raw = await request.read()
            if not raw.strip():
                errors.append({"loc": ["body"], "msg": "Field required", "type": "missing"})
            else:
                try:
                    body = route.body.model_validate_json(raw)
                except ValidationError as err:
                    errors += _error_items(err.errors(include_url=False), ("body",))
        if errors:
            return web.json_response({"detail": errors}, status=422)
        result = await route.handler(Call(request, path, text, query, body, principal, route.upload))
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(body=result.model_dump_json().encode(), content_type="application/json")

    return endpoint


# A part's file name is only echoed back; a longer one is cut.
MAX_FILENAME = 255


async def read_upload(request: web.Request, upload: Upload) -> list[UploadedFile]:
    """The files of a multipart upload, read part by part (aiohttp's `client_max_size` guards only bodies
    read whole): a body that is not multipart is a 415, a part too big a 413, anything else wrong a 422."""
    if request.content_type != "multipart/form-data":
        wanted = f"send multipart/form-data with one or more `{upload.field}` parts"
        raise HTTPError(415, f"{wanted}, not {request.content_type}")
    files: list[UploadedFile] = []
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != upload.field:
                name = part.name if isinstance(part, BodyPartReader) else None
                raise InvalidRequest(
                    ["body", name or ""], f"unexpected part {name!r}: send files as `{upload.field}` parts"
                )
            if len(files) == upload.max_files:
                raise InvalidRequest(
                    ["body", upload.field], f"at most {upload.max_files} files in one request", "too_long"
                )
            filename = part.filename[:MAX_FILENAME] if part.filename is not None else None
            files.append(UploadedFile(filename, await _read_part(part, upload, len(files))))
    except (ValueError, AssertionError, ContentEncodingError) as err:
        # aiohttp's multipart reader says "Invalid boundary", asserts on a broken part, and so on.
        raise InvalidRequest(["body"], f"not a valid multipart/form-data body: {err}") from err
    if not files:
        raise InvalidRequest(["body", upload.field], "Field required", "missing")
    return files


async def _read_part(part: BodyPartReader, upload: Upload, index: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > upload.max_bytes:
            named = f" ({part.filename})" if part.filename else ""
            raise HTTPError(
                413, f"{upload.field} {index}{named} is over the limit of {upload.max_bytes:,} bytes per file"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _authorize(route: Route, request: web.Request, authenticate: Authenticator) -> Principal | None:
    if route.roles is None:
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPError(401, "Not authenticated: send Authorization: Bearer <token>", challenge)
    principal = await authenticate(request, token.strip())
    if principal is None:
        raise HTTPError(401, "Invalid or revoked token", challenge)
    if principal.role not in route.roles:
        wanted = " or ".join(sorted(role.value for role in route.roles))
        raise HTTPError(403, f"Not allowed: this route needs a {wanted} token, not {principal.role.value}")
    return principal


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as JSON: our HTTPError, aiohttp's own 404/405/413, and (never expected) a crash."""
    try:
        return await handler(request)
    except InvalidRequest as err:
        return web.json_response({"detail": err.items}, status=422)
    except HTTPError as err:
        return web.json_response({"detail": err.detail}, status=err.status, headers=err.headers)
    except (NotFound, Conflict, Unavailable, InvalidInput) as err:
        return domain_response(err)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        headers = {k: v for k, v in err.headers.items() if k.lower() in ("allow", "www-authenticate")}
        return web.json_response({"detail": err.reason}, status=err.status, headers=headers)
    except Exception:
        log.exception("unhandled error method=%s path=%s", request.method, request.path)
        return web.json_response({"detail": "Internal Server Error"}, status=500)
