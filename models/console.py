"""What the two programs do with their console streams: describe an OSError on one line, and leave quietly
when the reader of their standard output has gone (`cloud-sync schema | head`)."""

from __future__ import annotations

import os
import select
import sys

# The status a shell shows for a program that SIGPIPE ended (`yes | head`): 128 + 13.
STDOUT_CLOSED = 141


def os_error_text(err: OSError) -> str:
    """errno's words and the file, e.g. "Connection refused" or "File exists: /etc/passwd"."""
    if isinstance(err, TimeoutError):
        return "timed out"
    text = os.strerror(err.errno) if err.errno and err.errno > 0 else (err.strerror or str(err))
    if err.filename:
        text = f"{text}: {err.filename}"
    return text or type(err).__name__


def stdout_reader_gone() -> bool:
    """Whether standard output is a pipe or socket whose reader has closed it."""
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else -1
    except (OSError, ValueError):
        return False
    if fd < 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def discard_stdout() -> int:
    """After a BrokenPipeError on standard output: send what is left of it to /dev/null, so that the
    interpreter's last flush fails no more, and return STDOUT_CLOSED (Python docs, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    os.close(devnull)
    return STDOUT_CLOSED
