"""An MCU inside the test's own event loop, on the far end of a real pty: McuProtocol and a recording board.

For tests of the host side (transport, client) that want a real serial boundary but every fault under the
test's hand; the simulator process (firmware_bridge.simulator) is the whole-process counterpart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator
from dataclasses import dataclass

from firmware_bridge.mcu import Identity, McuProtocol
from tests.support.boards import RecordingBoard


@dataclass
class PtyMcu:
    path: str
    board: RecordingBoard
    protocol: McuProtocol
    master: int
    deaf: bool = False  # stop reading and answering, as a hung MCU would


@contextlib.asynccontextmanager
async def pty_mcu(boot_id: int = 0xB007) -> AsyncIterator[PtyMcu]:
    loop = asyncio.get_running_loop()
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    board = RecordingBoard()
    mcu = PtyMcu(
        os.ttyname(slave),
        board,
        McuProtocol(board, Identity(1, boot_id, 0x010000, 0x7F), loop.time()),
        master,
    )

    def flush() -> None:
        data = mcu.protocol.data_to_send()
        if data and not mcu.deaf:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(master, data)

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except (BlockingIOError, OSError):
            return
        if not mcu.deaf:
            mcu.protocol.receive(data, loop.time())
            flush()

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.01)
            mcu.protocol.tick(loop.time())
            flush()

    loop.add_reader(master, readable)
    ticker = asyncio.create_task(tick())
    try:
        yield mcu
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        loop.remove_reader(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
