"""What the two programs do with their console streams: describe an OSError on one line, and leave quietly
when the reader of their standard output has gone (`cloud-sync schema | head`)."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable

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


def run_command(
    program: str,
    handler: Callable[[], int],
    known: type[Exception] | tuple[type[Exception], ...],
    lines: Callable[[Exception], list[str]] = lambda err: [str(err)],
) -> int:
    """Run a command's handler and turn how it ends into an exit status: `known` errors as their `lines`
    (each prefixed with `program: ` unless it names its own place) on stderr and 1; any other OSError as one
    line naming it and 1; a reader of standard output that has gone as STDOUT_CLOSED, quietly."""
    try:
        code = handler()
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
    except known as err:
        for line in lines(err):
            print(line, file=sys.stderr)
        return 1
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise
        return discard_stdout()  # `program ... | head`: the reader has all it wanted
    except OSError as err:  # a file or socket the user named, not translated further in: name it at least
        print(f"{program}: {os_error_text(err)}", file=sys.stderr)
        return 1
    return code
