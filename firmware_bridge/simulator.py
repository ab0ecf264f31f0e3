"""The MCU simulator: the MCU's side of the protocol (`McuProtocol`) and simulated devices (`SimBoard`) behind
a pty, run as its own process so the host meets it through a real serial device path, as it meets a board.

It prints the pty's slave path on its first stdout line. Tests drive the world around the board through a
control socket (a Unix domain socket, one JSON request a line, one JSON answer a line): tap a card, press
the e-stop, raise a fault, reset the MCU, make it go quiet, or read its state. `--schema-hash-override` and
`--proto-major-override` make it incompatible firmware, for the host's version check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import select
import signal
import sys
import threading
import time
import tty
from collections.abc import Callable, Sequence
from typing import Final

from firmware_bridge.errors import FirmwareBridgeError
from firmware_bridge.mcu import Identity, McuProtocol
from firmware_bridge.schema import (
    PROTO_MAJOR,
    SCHEMA_HASH,
    Cap,
)
from firmware_bridge.sim_board import SimBoard, SimulationError

log = logging.getLogger(__name__)

TICK_S: Final = 0.010
FW_VERSION: Final = 0x01_00_00  # 1.0.0
CAPS: Final = int(sum(Cap))  # every device the protocol knows
READ_CHUNK: Final = 4096
SILENCE_MAX_MS: Final = 60_000
REQUEST_LIMIT: Final = 64 * 1024
POLL_S: Final = 0.05  # how often the UART thread looks whether it should stop
Json = dict[str, object]


class ControlError(FirmwareBridgeError):
    """A control request the simulator cannot carry out; the message goes back to the client."""


class SimulatedMcu:
    """One simulated MCU, sans-IO: the board, the protocol over it, and the control requests.

    A reboot replaces both (a new boot_id, a fresh board, events still queued in the old protocol lost), as
    an MCU reset does. A silence stops the MCU reading, writing and ticking, as a hung MCU would; what the
    host sends meanwhile is lost, like bytes overrunning a UART nobody services.
    """

    def __init__(
        self, now: float, board_id: int = 1, proto_major: int = PROTO_MAJOR, schema_hash: int = SCHEMA_HASH
    ) -> None:
        self._board_id = board_id
        self._version = (proto_major, schema_hash)
        self._boot_id = 0
        self._silent_until: float | None = None
        self.board, self.protocol = self._boot(now)

    def _boot(self, now: float) -> tuple[SimBoard, McuProtocol]:
        boot_id = secrets.randbits(32)
        while boot_id == self._boot_id:  # a reboot must be visible to the host
            boot_id = secrets.randbits(32)
        self._boot_id = boot_id
        identity = Identity(board_id=self._board_id, boot_id=boot_id, fw_version=FW_VERSION, caps=CAPS)
        board = SimBoard()
        proto_major, schema_hash = self._version
        protocol = McuProtocol(board, identity, now, proto_major=proto_major, schema_hash=schema_hash)
        log.info("MCU started board_id=%d boot_id=%#010x", self._board_id, boot_id)
        return board, protocol

    def silent(self, now: float) -> bool:
        return self._silent_until is not None and now < self._silent_until

    def _awake(self, now: float) -> bool:
        if self._silent_until is None:
            return True
        if now < self._silent_until:
            return False
        self._silent_until = None
        # Waking, the MCU sees first how long it heard nothing, and only then the bytes that came after.
        self.protocol.tick(now)
        return True

    def receive(self, data: bytes, now: float) -> None:
        if self._awake(now):
            self.protocol.receive(data, now)

    def tick(self, now: float) -> None:
        if self._awake(now):
            self.protocol.tick(now)

    def data_to_send(self) -> bytes:
        return self.protocol.data_to_send()

    def control_line(self, line: bytes, now: float) -> Json:
        """Answer one request line; a request that cannot be carried out gets `ok: false` and the reason."""
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return {"ok": False, "error": f"bad JSON: {err}"}
        try:
            return {"ok": True, **self.control(request, now)}
        except (ControlError, SimulationError) as err:
            return {"ok": False, "error": str(err)}

    def control(self, request: object, now: float) -> Json:
        """Carry out one request (a decoded JSON object); raises `ControlError` naming what is wrong."""
        if not isinstance(request, dict):
            raise ControlError(f"a request is a JSON object, got {type(request).__name__}")
        op = request.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise ControlError(f"unknown op {op!r}; known: {', '.join(sorted(self._ops))}")
        answer = handler(self, request, now)
        self.tick(now)  # so what the request caused goes out now, not at the next tick
        return answer

    def _card(self, request: dict[str, object], now: float) -> Json:
        reader = _int(request, "card", "reader", 0, 0xFF)
        uid = request.get("uid")
        try:
            if not isinstance(uid, str):
                raise ValueError
            data = bytes.fromhex(uid)
        except ValueError:
            raise ControlError("card: 'uid' must be a string of hex digits") from None  # never echo a UID
        self.board.tap_card(reader, data, now)
        return {}

    def _estop(self, request: dict[str, object], now: float) -> Json:
        self.board.set_estop(_bool(request, "estop", "pressed"), now)
        return {}

    def _fault(self, request: dict[str, object], now: float) -> Json:
        code = _int(request, "fault", "code", 0, 0xFFFF)
        self.board.set_fault(code, _bool(request, "fault", "active"), now)
        return {}

    def _reboot(self, request: dict[str, object], now: float) -> Json:
        self._silent_until = None
        self.board, self.protocol = self._boot(now)
        return {"boot_id": self._boot_id}

    def _silence(self, request: dict[str, object], now: float) -> Json:
        ms = _int(request, "silence", "ms", 1, SILENCE_MAX_MS)
        self._silent_until = now + ms / 1000
        log.info("silent for %d ms", ms)
        return {}

    def _state(self, request: dict[str, object], now: float) -> Json:
        return {
            **self.board.state(now),
            "linked": self.protocol.linked,
            "boot_id": self._boot_id,
            "rejected_frames": self.protocol.rejected_frames,
            "uptime_ms": self.protocol.uptime_ms(now),
            "silent": self.silent(now),
        }

    _ops: Final[dict[str, Callable[[SimulatedMcu, dict[str, object], float], Json]]] = {
        "card": _card,
        "estop": _estop,
        "fault": _fault,
        "reboot": _reboot,
        "silence": _silence,
        "state": _state,
    }


def _int(request: dict[str, object], op: str, key: str, low: int, high: int) -> int:
    value = request.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ControlError(f"{op}: {key!r} must be an integer {low}..{high}, got {value!r}")
    return value


def _bool(request: dict[str, object], op: str, key: str) -> bool:
    value = request.get(key)
    if not isinstance(value, bool):
        raise ControlError(f"{op}: {key!r} must be true or false, got {value!r}")
    return value


class Pty:
    """The MCU's end of the serial line: a raw pty whose slave path the host opens as its serial port.

    We keep our own slave fd open for our lifetime and never read it: while a slave fd is open, the master
    never reports EIO, whether or not a host has the path open, and the raw mode set here stays in place
    for the host's next open.
    """

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)

    def read(self) -> bytes:
        try:
            return os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> None:
        """Write what fits; the rest is lost, as bytes are on a UART nobody listens to."""
        if not data:
            return
        try:
            written = os.write(self.master, data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            log.debug("pty full: %d bytes dropped", len(data) - written)

    def close(self) -> None:
        os.close(self.master)
        os.close(self._slave)


async def serve(control_path: str | None, board_id: int, proto_major: int, schema_hash: int) -> int:
    """Run one simulated MCU until SIGTERM or SIGINT (0), or until the pty fails (1)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    failed = False
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pty = Pty()
    mcu = SimulatedMcu(loop.time(), board_id, proto_major, schema_hash)

    # The MCU's state is shared by the UART thread and the loop (ticks, control requests): one lock.
    lock = threading.Lock()
    uart_stop = threading.Event()

    def flush() -> None:
        pty.write(mcu.data_to_send())

    def uart() -> None:
        """Serve the pty at once, as firmware serves its UART from an interrupt: a thread blocked in select,
        not a callback behind the event loop (measured: 8% more round trips a second)."""
        nonlocal failed
        while not uart_stop.is_set():
            if not select.select([pty.master], [], [], POLL_S)[0]:
                continue
            try:
                data = pty.read()
            except OSError as err:
                log.error("reading the pty failed: %s", err)
                failed = True
                loop.call_soon_threadsafe(stop.set)
                return
            with lock:
                mcu.receive(data, time.monotonic())  # the clock loop.time() reads too
                flush()

    clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        clients[task] = writer
        try:
            while line := await reader.readline():
                with lock:
                    answer = mcu.control_line(line, loop.time())
                    flush()
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except ValueError:  # the line was longer than the limit: answer, then hang up
            writer.write(json.dumps({"ok": False, "error": f"request over {REQUEST_LIMIT} bytes"}).encode())
            writer.write(b"\n")
        except ConnectionError:
            pass
        finally:
            writer.close()
            del clients[task]

    server: asyncio.AbstractServer | None = None
    reader: threading.Thread | None = None
    try:
        if control_path is not None:
            server = await asyncio.start_unix_server(on_client, path=control_path, limit=REQUEST_LIMIT)
        # The path goes out once everything is ready, so a client that has it may connect at once.
        print(pty.path, flush=True)
        reader = threading.Thread(target=uart, name="uart", daemon=True)
        reader.start()
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            with lock:
                mcu.tick(loop.time())
                flush()
    finally:
        uart_stop.set()
        if reader is not None:
            reader.join(timeout=1.0)
        if server is not None and control_path is not None:
            server.close()
            # Hang up on clients so that their handlers end by themselves: a cancelled one makes asyncio
            # (3.11) log an error.
            for writer in clients.values():
                writer.close()
            if clients:
                await asyncio.wait(list(clients), timeout=1.0)
            # asyncio removes a socket file left at the path before it binds; this one is ours to remove.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(control_path)
        pty.close()
    return 1 if failed else 0


def _unsigned(bits: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        with contextlib.suppress(ValueError):
            if 0 <= (value := int(text, 0)) < 1 << bits:
                return value
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer 0..{(1 << bits) - 1}")

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.simulator",
        description="Simulate the robot's MCU behind a pty: prints the pty path the host should open as its "
        "serial port, then runs until SIGTERM or SIGINT.",
    )
    parser.add_argument(
        "--board-id", type=_unsigned(32), default=1, metavar="N", help="board_id in HELLO_ACK (default: 1)"
    )
    parser.add_argument(
        "--control",
        metavar="PATH",
        help="Unix socket for control requests, one JSON object a line: op card, estop, fault, reboot, "
        "silence or state (default: no control socket)",
    )
    parser.add_argument(
        "--schema-hash-override",
        type=_unsigned(32),
        metavar="N",
        help="claim this schema hash (e.g. 0x12345678) instead of the real one: incompatible firmware",
    )
    parser.add_argument(
        "--proto-major-override",
        type=_unsigned(8),
        metavar="N",
        help=f"claim this protocol major version instead of {PROTO_MAJOR}: incompatible firmware",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="what goes to stderr (default: WARNING)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator; the pty path goes to stdout, the log to stderr."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    proto_major = PROTO_MAJOR if args.proto_major_override is None else args.proto_major_override
    schema_hash = SCHEMA_HASH if args.schema_hash_override is None else args.schema_hash_override
    try:
        return asyncio.run(serve(args.control, args.board_id, proto_major, schema_hash))
    except OSError as err:
        print(f"simulator: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
