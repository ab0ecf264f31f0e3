"""The MCU simulator as a process for tests: started on its own pty, ready once its control socket answers."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0  # for anything that should take milliseconds: generous, since CI machines are shared


class Simulator:
    """A running simulator process: its pty path and its control socket."""

    def __init__(self, process: subprocess.Popen[bytes], control: Path, stderr: Path) -> None:
        self.process = process
        self.control_path = control
        self.stderr_path = stderr
        self.pty_path = ""

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def control_raw(self, line: bytes) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(str(self.control_path))
            sock.sendall(line)
            answer = sock.makefile("rb").readline()
        assert answer.endswith(b"\n"), f"no answer to {line!r}; simulator log:\n{self.log()}"
        result: dict[str, Any] = json.loads(answer)
        return result

    def control(self, **request: object) -> dict[str, Any]:
        answer = self.control_raw(json.dumps(request).encode() + b"\n")
        assert answer["ok"] is True, f"{request} -> {answer}"
        return answer

    def state(self) -> dict[str, Any]:
        return self.control(op="state")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def read_first_line(simulator: Simulator) -> str:
    stdout = simulator.process.stdout
    assert stdout is not None
    deadline = time.monotonic() + TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stdout], [], [], left)[0]:
            pytest.fail(f"the simulator printed no pty path within {TIMEOUT} s; log:\n{simulator.log()}")
        chunk = os.read(stdout.fileno(), 1)
        if not chunk:
            pytest.fail(f"the simulator exited ({simulator.process.wait()}); log:\n{simulator.log()}")
        line += chunk
    return line.decode().strip()


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., Simulator]]:
    """`start_simulator(*args)`: a simulator process, ready (its control socket answers); stopped after."""
    # A short directory of our own: a Unix socket path must fit in 108 bytes, pytest's tmp_path may not.
    directory = Path(tempfile.mkdtemp(prefix="railbot-sim-"))
    started: list[Simulator] = []

    def start(*args: str) -> Simulator:
        control = directory / f"ctl{len(started)}.sock"
        stderr = directory / f"sim{len(started)}.log"
        with stderr.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "firmware_bridge.simulator", "--control", str(control), *args],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        simulator = Simulator(process, control, stderr)
        started.append(simulator)
        simulator.pty_path = read_first_line(simulator)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                simulator.state()
                return simulator
            except (FileNotFoundError, ConnectionRefusedError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the control socket never answered; simulator log:\n{simulator.log()}")
                time.sleep(0.01)

    yield start
    for simulator in started:
        simulator.stop()
    shutil.rmtree(directory)
