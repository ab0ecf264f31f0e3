"""The cloud service's exceptions: everything it raises on purpose derives from CloudSyncError."""

from sqlalchemy.exc import DBAPIError

from models.console import os_error_text


class CloudSyncError(Exception):
    """Base of the cloud service's errors."""


def reason(err: BaseException) -> str:
    """What went wrong, in a library's own words, on one line: a driver's message without SQLAlchemy's
    wrapping, errno's words for an OSError ("Connection refused", not asyncio's "Connect call failed")."""
    if isinstance(err, DBAPIError) and err.orig is not None:
        text = str(err.orig)
    elif isinstance(err, OSError):
        text = os_error_text(err)
    else:
        text = str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


# What the cloud's domain code refuses, each answered with one HTTP status by the routing layer
# (`cloud_sync.web.routing.json_errors`); the domain knows nothing of HTTP.


class NotFound(CloudSyncError):
    """Something the request names does not exist (404)."""


class Conflict(CloudSyncError):
    """The request contradicts what is stored, e.g. more wanted than is in stock (409)."""


class Unavailable(CloudSyncError):
    """Nothing was done and nothing stored, for now: worth trying again in a second (503, Retry-After)."""


class InvalidInput(CloudSyncError):
    """A value the request's models let through but the domain refuses (422, in FastAPI's body shape):
    `loc` names it as FastAPI would (`["body", "valid_until"]`)."""

    def __init__(self, loc: list[str | int], msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.kind = kind
