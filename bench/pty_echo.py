"""The MCU link benchmark's baseline: a process that echoes every byte back on a pty of its own.

Run as `python -m bench.pty_echo`; it prints its pty's path on the first line and echoes until killed. A
command round trip through it is the floor under any protocol: two pty hops and two process wake-ups.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import tty


def main() -> int:
    master, slave = os.openpty()
    tty.setraw(slave)  # the slave stays open here too, so the master never sees EIO between clients
    print(os.ttyname(slave), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        select.select([master], [], [])
        data = os.read(master, 4096)
        os.write(master, data)


if __name__ == "__main__":
    raise SystemExit(main())
