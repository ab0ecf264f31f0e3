"""The host transport on pyserial URLs other than a pty: socket:// (with the port going away and coming
back) and loop://, where nothing answers and the client says so instead of hanging."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator

import pytest

from firmware_bridge.client import McuClient
from firmware_bridge.errors import TransportError
from firmware_bridge.mcu import Identity, McuProtocol
from firmware_bridge.schema import ReplyResult
from firmware_bridge.transport import SerialTransport
from tests.support.boards import RecordingBoard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def tcp_mcu(port: int, board: RecordingBoard) -> AsyncIterator[asyncio.Server]:
    """An MCU behind a TCP port, one protocol instance per connection, as a serial-to-TCP bridge gives."""
    loop = asyncio.get_running_loop()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        mcu = McuProtocol(board, Identity(2, 0xC0FFEE, 0x010000, 0x7F), loop.time())
        while True:
            try:
                async with asyncio.timeout(0.01):
                    data = await reader.read(4096)
            except TimeoutError:
                mcu.tick(loop.time())
            else:
                if not data:
                    return
                mcu.receive(data, loop.time())
            writer.write(mcu.data_to_send())
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield server
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_socket_url_links_and_survives_the_port_going_away() -> None:
    port, board = free_port(), RecordingBoard()
    async with McuClient(f"socket://127.0.0.1:{port}", reopen_s=0.05) as client:
        async with tcp_mcu(port, board):
            await client.wait_linked()
            assert await client.command("BUZZER", freq_hz=440, ms=100) is ReplyResult.OK
        # The bridge is gone: the client notices and keeps trying, naming what fails.
        for _ in range(250):
            if not client.linked and client.transport_error is not None:
                break
            await asyncio.sleep(0.02)
        assert f"127.0.0.1:{port}" in (client.transport_error or "no transport error within 5 s")
        async with tcp_mcu(port, board):
            await client.wait_linked()
            assert await client.command("BUZZER", freq_hz=880, ms=100) is ReplyResult.OK
    assert [f["freq_hz"] for name, f in board.executed] == [440, 880]


async def test_loop_url_never_links_and_says_so() -> None:
    # loop:// hands the host its own HELLOs back: no MCU answers, and the wait ends with a named error.
    async with McuClient("loop://") as client:
        with pytest.raises(TimeoutError, match=re.escape("no link to the MCU on loop:// after 0.5 s")):
            await client.wait_linked(within_s=0.5)
        assert client.counters.frames_in > 0  # it did hear its own frames, and dropped them


async def test_opening_a_bad_url_is_a_named_error() -> None:
    transport = SerialTransport("nosuchscheme://x", on_data=lambda _: None, on_error=lambda _: None)
    with pytest.raises(TransportError, match="cannot open nosuchscheme://x"):
        transport.open()
