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
