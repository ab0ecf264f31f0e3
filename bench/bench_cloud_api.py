"""Store API under wrk load, SQLite and PostgreSQL: items page and purchases vs a bare aiohttp app.

For each database: a migrated `cloud-sync serve` process, a store with 50 items of unlimited stock, then
`wrk -t2 -c32 -d8s --latency` on `GET /store_api/store/items?size=50` and `POST /store_api/store/purchase`.
The baseline is `bench/bare_server.py` answering the same bytes from memory, loaded by the same command in
the same run. Each figure's second line has p50/p99 latency, non-2xx answers and the server's log problems.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.databases import postgres_database
from bench.report import Figure

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
WRK_ARGS = ("-t2", "-c32", "-d8s", "--latency")
ITEM_COUNT = 50
ITEMS_PATH = f"/store_api/store/items?size={ITEM_COUNT}"
PURCHASE_PATH = "/store_api/store/purchase"
TASKS_PATH = "/store_api/store/tasks?size=1"
READY_TIMEOUT_S = 60.0
ITEMS_TARGET = 0.40
PURCHASES_TARGET = 0.20

# wrk prints times with the unit that keeps the number short.
_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1_000.0, "m": 60_000.0, "h": 3_600_000.0}
_LOG_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


class BenchSetupError(Exception):
    """The service could not be brought up for the benchmark: a command, server or request failed."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reported."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    timeouts: int

    @property
    def ok_responses(self) -> int:
        return self.requests - self.non_2xx


def _latency_ms(text: str, percentile: int) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {percentile}% latency line in wrk's output")
    return float(match[1]) * _TIME_UNITS_MS[match[2]]


def parse_wrk(text: str) -> WrkResult:
    """Parse the report of `wrk --latency`; raises `ValueError` when a required line is missing."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", text, re.MULTILINE)
    if rate is None or total is None:
        raise ValueError(f"not a wrk report: {text[:300]!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        requests_per_s=float(rate[1]),
        p50_ms=_latency_ms(text, 50),
        p99_ms=_latency_ms(text, 99),
        requests=int(total[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        timeouts=int(sockets[4]) if sockets else 0,
    )


@dataclass(frozen=True, kw_only=True)
class LoadFigure(Figure):
    """A throughput figure with wrk's latencies, error counts and notes on a second line."""

    measured: WrkResult
    bare: WrkResult
    minimum_ratio: float
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        verdict = "met" if self.ratio >= self.minimum_ratio else "MISSED"
        m, b = self.measured, self.bare
        details = (
            f"    p50 {m.p50_ms:.1f} ms  p99 {m.p99_ms:.1f} ms  (bare p50 {b.p50_ms:.1f} ms  "
            f"p99 {b.p99_ms:.1f} ms)  {m.requests:,} requests, non-2xx {m.non_2xx:,}, "
            f"socket errors {m.socket_errors:,} ({m.timeouts:,} timeouts)  (bare non-2xx {b.non_2xx:,})  "
            f"target {verdict}"
        )
        return "\n".join([super().line(), details, *(f"    ! {note}" for note in self.notes)])


@dataclass
class Server:
    """A server process on a free port, its output going to a log file."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_offset(self) -> int:
        return self.log.stat().st_size

    def log_problems(self, since: int) -> list[str]:
        """Warning, error and traceback lines the server logged after byte `since`."""
        with self.log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return [line for line in text.splitlines() if _LOG_PROBLEM.search(line)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(server: Server, ready_path: str) -> None:
    url = server.base_url + ready_path
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise BenchSetupError(
                f"server for {url} exited with {server.process.returncode}:\n{_log_tail(server.log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise BenchSetupError(f"{url} did not answer within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


@contextmanager
def _serve(command: Sequence[str], log: Path, ready_path: str) -> Iterator[Server]:
    """Start `command --port P` on a free port, poll until `ready_path` answers 200, kill it at the end."""
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://{HOST}:{port}", log)
    try:
        _wait_ready(server, ready_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cli(*args: str) -> str:
    """Run `cloud-sync ARGS` and return what it printed; raises `BenchSetupError` if it failed."""
    result = subprocess.run(
        [str(BIN / "cloud-sync"), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise BenchSetupError(f"cloud-sync {args[0]} failed ({result.returncode}): {result.stderr[-800:]}")
    return result.stdout.strip()


def _call(method: str, url: str, token: str, body: object = None) -> bytes:
    """One JSON request that must answer 2xx; returns the body."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as err:
        raise BenchSetupError(f"{method} {url} -> {err.code}: {err.read()[:500]!r}") from err


def _wrk(server: Server, args: Sequence[str], url_path: str) -> tuple[WrkResult, list[str]]:
    """Load `server` with the benchmark's wrk command; the result and what the server logged meanwhile."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchSetupError("wrk is not installed (apt-get install wrk)")
    offset = server.log_offset()
    result = subprocess.run(
        [wrk, *WRK_ARGS, *args, server.base_url + url_path],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise BenchSetupError(f"wrk failed ({result.returncode}): {result.stderr[-500:]}")
    return parse_wrk(result.stdout), server.log_problems(offset)


def _lua_post(path: Path, body: bytes, token: str) -> Path:
    # Long brackets: the JSON and the token never contain "]==]".
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = [==[Bearer {token}]==]\n'
    )
    return path


def _log_note(problems: list[str]) -> tuple[str, ...]:
    if not problems:
        return ()
    return (f"server logged {len(problems):,} warning/error lines under load; first: {problems[0][:300]}",)


def _tasks_total(server: Server, token: str) -> int:
    total: int = json.loads(_call("GET", server.base_url + TASKS_PATH, token))["total"]
    return total


def _bench_database(label: str, url: str, work: Path) -> list[Figure]:
    work.mkdir()
    keys = work / "keys"
    _cli("migrate", "--db", url)
    with ExitStack() as stack:
        # Key rotation and the admin token run while the server imports and starts.
        with ThreadPoolExecutor(max_workers=2) as pool:
            rotated = pool.submit(_cli, "keys", "rotate", "--db", url, "--keys-dir", str(keys))
            admin_token = pool.submit(_cli, "token", "create", "--db", url, "--role", "admin")
            serve = [str(BIN / "cloud-sync"), "serve", "--db", url, "--keys-dir", str(keys), "--host", HOST]
            cloud = stack.enter_context(_serve(serve, work / "cloud.log", "/openapi.json"))
            rotated.result()
            admin = admin_token.result()
        store_body = {
            "name": "Bench buffet",
            "description": "wrk",
            "logo_url": "/b.png",
            "store_type": "SHOP",
        }
        store_id = json.loads(_call("POST", cloud.base_url + "/store_api/admin/store", admin, store_body))[
            "id"
        ]
        token = _cli("token", "create", "--db", url, "--role", "store", "--store-id", store_id)
        item_ids = [
            json.loads(
                _call(
                    "POST",
                    cloud.base_url + "/store_api/store/item",
                    token,
                    {"name": f"Item {i}", "description": "bench", "price_penny": 100 + i, "balance": None},
                )
            )["id"]
            for i in range(ITEM_COUNT)
        ]
        page = _call("GET", cloud.base_url + ITEMS_PATH, token)
        if len(json.loads(page)["items"]) != ITEM_COUNT:
            raise BenchSetupError(f"{label}: the items page does not hold the {ITEM_COUNT} items added")
        purchase = json.dumps(
            {
                "user_id": str(uuid.uuid4()),
                "items": [{"item_id": item_ids[0], "count": 1}],
                "is_default_ready": True,
            }
        ).encode()
        purchase_answer = _call("POST", cloud.base_url + PURCHASE_PATH, token, json.loads(purchase))
        (work / "items.json").write_bytes(page)
        (work / "purchase.json").write_bytes(purchase_answer)
        bare_command = [sys.executable, "-m", "bench.bare_server", "--host", HOST]
        bare_command += ["--items", str(work / "items.json"), "--purchase", str(work / "purchase.json")]
        bare = stack.enter_context(_serve(bare_command, work / "bare.log", ITEMS_PATH))

        get_args = ("-H", f"Authorization: Bearer {token}")
        items, items_log = _wrk(cloud, get_args, ITEMS_PATH)
        items_bare, _ = _wrk(bare, get_args, ITEMS_PATH)

        post_args = ("-s", str(_lua_post(work / "purchase.lua", purchase, token)))
        tasks_before = _tasks_total(cloud, token)
        purchases, purchases_log = _wrk(cloud, post_args, PURCHASE_PATH)
        recorded = _tasks_total(cloud, token) - tasks_before
        purchases_bare, _ = _wrk(bare, post_args, PURCHASE_PATH)

    purchase_notes = list(_log_note(purchases_log))
    if purchases.non_2xx or purchases.socket_errors:
        purchase_notes.append(
            f"purchases must all succeed: {purchases.non_2xx:,} non-2xx, "
            f"{purchases.socket_errors:,} socket errors ({purchases.timeouts:,} timeouts: no answer in 2 s)"
        )
    # wrk does not count answers still in flight when it stops, so the database may hold a few more.
    if recorded < purchases.ok_responses:
        purchase_notes.append(
            f"only {recorded:,} purchases recorded for {purchases.ok_responses:,} 2xx answers"
        )
    return [
        LoadFigure(
            f"GET items?size=50 ({label})",
            items.requests_per_s,
            "bare aiohttp, same bytes",
            items_bare.requests_per_s,
            "req/s",
            f">= {ITEMS_TARGET:.2f}",
            measured=items,
            bare=items_bare,
            minimum_ratio=ITEMS_TARGET,
            notes=_log_note(items_log),
        ),
        LoadFigure(
            f"POST purchase ({label})",
            purchases.requests_per_s,
            "bare aiohttp, fixed answer",
            purchases_bare.requests_per_s,
            "req/s",
            f">= {PURCHASES_TARGET:.2f}",
            measured=purchases,
            bare=purchases_bare,
            minimum_ratio=PURCHASES_TARGET,
            notes=(f"{recorded:,} purchases recorded in the database", *purchase_notes),
        ),
    ]


@contextmanager
def _sqlite_database(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'cloud.db'}"


def run() -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="railbot-bench-") as tmp:
        work = Path(tmp)
        for label, database in (
            ("SQLite", _sqlite_database(work)),
            ("PostgreSQL", postgres_database()),
        ):
            with database as url:
                figures += _bench_database(label, url, work / label.lower())
    return figures
