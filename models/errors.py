"""The base of every exception `models` raises on purpose: callers that only need "bad data from models" catch
`ModelsError`; each module's own errors (tickets, COSE, batches, acks, ...) derive from it."""

from __future__ import annotations


class ModelsError(Exception):
    """Base of every error raised by `models` on purpose."""
