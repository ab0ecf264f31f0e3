"""The whole agent loaded: CPU share, resident memory and event-loop lag of `robot-agent run`, next to idle.

Two real `robot-agent run` processes, one after the other in the same run, each on its own robot identity
against the same private Mosquitto and `cloud-sync ingest` (SQLite), with simulated hardware:
- idle: no camera, an empty outbox, nobody on the local API (only this benchmark reading GET /status);
- loaded: a folder camera at 15 fps of 1280x720 JPEG frames (as a camera's MJPEG would come) showing ticket
  QR codes, each held up for a second (15 frames) by a passenger after another, scanning on (each showing a
  durable check, an outbox event, the behaviour's lights, gate and words); a backlog of BACKLOG_EVENTS
  purchases in the outbox draining to the cloud throughout; a client streaming GET /events from the local
  API's socket.
Each runs until every part is running and it is online, then WARMUP_S more, then a WINDOW_S window is
measured: CPU share (utime+stime from /proc/PID/stat over wall time, % of one core; and the event loop's own
thread, the main one), resident memory (VmRSS at the end, the most seen, and the peak VmHWM), and the event
loop's lag p50/p99 from the agent's own probe (the status's "loop": the last 300 wake-ups of a 100 ms sleep,
the window's ~30 s), with the loop thread's run-queue wait and a bare asyncio loop in a process beside it
for the same window (what the machine alone did to any loop). Target: loop lag p99 < 20 ms loaded. GET
/status is read once a second in both. `python -m bench.bench_agent_load` also measures each part of the load
alone (`split()`, decisions 52).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.bench_tickets import ticket_claims
from bench.report import Figure, Table
from bench.sync_rig import (
    ACL,
    BIN,
    INGEST_USER,
    BenchRobot,
    BenchSetupError,
    Rig,
    fill_outbox,
    ingest_problems,
    register,
    sqlite_database,
    start_ingest,
    stop_ingest,
)
from cloud_sync.db.migrate import upgrade
from cloud_sync.desks.signing import trust_document
from models.tickets import TrustedKey, encode_ticket
from robot_agent.identity import create_key_file
from tests.support.mosquitto import MosquittoBroker
from tests.support.qr_images import LEVELS, photograph
from tests.support.sync import robot_toml

WARMUP_S = 10.0
WINDOW_S = 30.0
READY_S = 90.0
STOP_S = 15.0
FPS = 15
FRAME_SIZE = (1280, 720)
PASSENGERS = 40  # 80 s of frames: every code the window sees is shown for the first time
BACKLOG_EVENTS = 250_000  # drained at ~3,500 events/s, it lasts beyond the window
LAG_TARGET_MS = 20.0
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


# -- the process, from /proc ---------------------------------------------------------------------------------


def cpu_s(stat_path: Path) -> float:
    """utime + stime of a process or thread, in seconds (fields 14 and 15 of its stat; the name, field 2, may
    hold spaces and parentheses, so fields are counted after its last ")")."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def threads_cpu_s(pid: int) -> dict[int, float]:
    """Each thread's utime + stime, by thread id (the main thread's id is the pid: the event loop's)."""
    seen: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a worker thread that just ended
            seen[int(task.name)] = cpu_s(task / "stat")
    return seen


def loop_waits(pid: int) -> tuple[float, int]:
    """The main thread's time spent runnable but waiting for a CPU (schedstat's second field, s), and its
    involuntary context switches: the loop's lag that the machine's other processes cause."""
    waited_ns = int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1])
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return waited_ns / 1e9, int(line.split()[1])
    raise BenchSetupError("no nonvoluntary_ctxt_switches in /proc")


def memory_bytes(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (its peak) of `pid`, in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


# -- the rig -------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """One agent's window."""

    label: str
    seconds: float
    cpu_percent: float
    loop_thread_percent: float
    thread_percents: list[float]  # the other threads' CPU, % of a core each, busiest first
    loop_waited_ms_per_s: float  # the loop thread's run-queue wait (runnable, no CPU), ms a second
    loop_preempted_per_s: float  # its involuntary context switches a second
    threads: int
    rss: int
    rss_max: int
    hwm: int
    loop: dict[str, Any]
    bare_loop: dict[str, Any]  # the bare loop's beside it
    load: list[float]  # 1-minute load average, once a second
    first: dict[str, Any]  # the status at the window's start
    last: dict[str, Any]  # and at its end
    streamed: int = 0  # events the API client read in the window
    backlog_seen: list[int] = field(default_factory=list)
    verdicts: collections.Counter[str] = field(default_factory=collections.Counter)  # the checks streamed


def _tickets(key: Ed25519PrivateKey, count: int) -> list[str]:
    """Tickets for today's train (742, the robot's assignment, UTC), valid from an hour ago."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    noon = now.replace(hour=12, minute=0, second=0)
    return [encode_ticket(c, key) for c in ticket_claims(now - dt.timedelta(hours=1), count, departure=noon)]


def _frames(folder: Path, key: Ed25519PrivateKey) -> None:
    """PASSENGERS one after another, each holding a code up for a second, then a second of the scene without
    one (the scanner's retry passes run on those); hard links repeat a frame without its disk space."""
    originals = folder.parent / "originals"
    folder.mkdir()
    originals.mkdir()
    rng = np.random.default_rng(16)
    width, height = FRAME_SIZE
    quality = [cv2.IMWRITE_JPEG_QUALITY, 90]
    empty = originals / "scene.jpg"
    cv2.imwrite(str(empty), cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), np.uint8), (31, 31), 0))
    for p, token in enumerate(_tickets(key, PASSENGERS)):
        shown = originals / f"code_{p:03d}.jpg"
        cv2.imwrite(str(shown), photograph(token, rng, LEVELS["train"], size=FRAME_SIZE).image, quality)
        for n in range(FPS):
            (folder / f"frame_{p:03d}_a{n:02d}.jpg").hardlink_to(shown)
            (folder / f"frame_{p:03d}_b{n:02d}.jpg").hardlink_to(empty)


def _config(folder: Path, broker: MosquittoBroker, robot: BenchRobot, camera: Path | None) -> Path:
    path = robot_toml(folder, robot.id, broker.url, robot.password)
    text = path.read_text().replace("scan = false", 'scan = false\ntrust_file = "trust.json"')
    if camera is not None:
        text = text.replace(
            '[camera.source]\ntype = "device"',
            f"[camera]\nwidth = {FRAME_SIZE[0]}\nheight = {FRAME_SIZE[1]}\nfps = {FPS}\n\n"
            f'[camera.source]\ntype = "folder"\npath = "{camera}"\npattern = "*.jpg"\nloop = true',
        )
        text = text.replace("scan = false", "scan = true")
    path.write_text(text + '\n[api]\nsocket = "agent.sock"\n')
    return path


def _robot(folder: Path, key: Ed25519PrivateKey) -> BenchRobot:
    folder.mkdir()
    entry = TrustedKey.from_public_key(
        key.public_key().public_bytes_raw(), valid_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    )
    (folder / "trust.json").write_text(trust_document([entry]).model_dump_json())
    return BenchRobot(uuid.uuid4(), create_key_file(folder / "robot.key"))


BARE_PROBE = """
import asyncio, json, sys
from robot_agent.loop_lag import LoopLag

async def main() -> None:
    probe = LoopLag(window=100_000)
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(float(sys.argv[1]))
    task.cancel()
    print(json.dumps(probe.snapshot()))

asyncio.run(main())
"""


def _bare_probe() -> subprocess.Popen[bytes]:
    """A bare asyncio loop in a process of its own, nothing but the agent's probe, for the window: the lag
    any loop on this machine suffered meanwhile (the other processes' share of the agent's lag)."""
    return subprocess.Popen([str(BIN / "python"), "-c", BARE_PROBE, str(WINDOW_S)], stdout=subprocess.PIPE)


def _start(config: Path) -> subprocess.Popen[bytes]:
    with (config.parent / "agent.log").open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "robot-agent"), "--config", str(config), "run"], stdout=out, stderr=subprocess.STDOUT
        )


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


@contextlib.asynccontextmanager
async def _agent(config: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    agent = _start(config)
    try:
        yield agent
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(agent.wait, STOP_S)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()


async def _status(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("http://robot/status") as answer:
        answer.raise_for_status()
        body: dict[str, Any] = await answer.json()
        return body


async def _ready(agent: subprocess.Popen[bytes], http: aiohttp.ClientSession, socket: Path) -> None:
    """Every part running, online, and (with a camera) frames coming; fail with the log's tail otherwise."""
    deadline = time.monotonic() + READY_S
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            break
        with contextlib.suppress(aiohttp.ClientError):
            status = await _status(http)
            parts = status["parts"].values()
            camera = status.get("vision", {}).get("camera", {"connected": True})
            if (
                status["sync"]["online"]
                and camera["connected"]
                and all(p["state"] == "running" for p in parts)
            ):
                return
        await asyncio.sleep(0.2)
    tail = (socket.parent / "agent.log").read_text(errors="replace")[-3000:]
    raise BenchSetupError(f"the agent did not get ready (status {json.dumps(status)[:800]}):\n{tail}")


async def _stream(
    http: aiohttp.ClientSession, counted: list[int], verdicts: collections.Counter[str]
) -> None:
    """The API client: GET /events, one NDJSON event a line, read as they come; the checks' verdicts kept."""
    async with http.get("http://robot/events", timeout=aiohttp.ClientTimeout(total=None)) as answer:
        answer.raise_for_status()
        async for line in answer.content:
            if line.strip():
                counted[0] += 1
                event = json.loads(line)
                if event["kind"] == "ticket_checked":
                    verdicts[event["data"]["verdict"]] += 1


async def measure(label: str, config: Path, *, streaming: bool) -> Measured:
    socket = config.parent / "agent.sock"
    async with _agent(config) as agent:
        connector = aiohttp.UnixConnector(path=str(socket))
        async with aiohttp.ClientSession(connector=connector) as http:
            await _ready(agent, http, socket)
            counted, verdicts = [0], collections.Counter[str]()
            streamer = asyncio.create_task(_stream(http, counted, verdicts)) if streaming else None
            try:
                await asyncio.sleep(WARMUP_S)
                pid, main = agent.pid, Path(f"/proc/{agent.pid}/task/{agent.pid}/stat")
                first = await _status(http)
                start, cpu0, loop0 = time.monotonic(), cpu_s(Path(f"/proc/{pid}/stat")), cpu_s(main)
                threads0, (waited0, switches0) = threads_cpu_s(pid), loop_waits(pid)
                bare = _bare_probe()
                streamed0 = counted[0]
                load: list[float] = []
                rss_seen: list[int] = []
                backlog: list[int] = []
                while time.monotonic() - start < WINDOW_S:
                    await asyncio.sleep(1.0)
                    load.append(os.getloadavg()[0])
                    rss_seen.append(memory_bytes(pid)["VmRSS"])
                    backlog.append(int((await _status(http))["sync"]["backlog"]))
                last = await _status(http)
                seconds = time.monotonic() - start
                cpu1, loop1, streamed = cpu_s(Path(f"/proc/{pid}/stat")), cpu_s(main), counted[0] - streamed0
                memory = memory_bytes(pid)
                threads1, (waited1, switches1) = threads_cpu_s(pid), loop_waits(pid)
                bare_out, _ = await asyncio.to_thread(bare.communicate)
                threads = _threads(pid)
            finally:
                if streamer is not None:
                    streamer.cancel()
                    await asyncio.gather(streamer, return_exceptions=True)
        if agent.poll() is not None:
            raise BenchSetupError(f"the {label} agent exited with {agent.returncode} while measured")
    return Measured(
        label=label,
        seconds=seconds,
        cpu_percent=100 * (cpu1 - cpu0) / seconds,
        thread_percents=sorted(
            (100 * (busy - threads0.get(tid, 0.0)) / seconds for tid, busy in threads1.items() if tid != pid),
            reverse=True,
        ),
        loop_waited_ms_per_s=1000 * (waited1 - waited0) / seconds,
        loop_preempted_per_s=(switches1 - switches0) / seconds,
        loop_thread_percent=100 * (loop1 - loop0) / seconds,
        threads=threads,
        rss=memory["VmRSS"],
        rss_max=max(rss_seen),
        hwm=memory["VmHWM"],
        loop=last["loop"],
        bare_loop=json.loads(bare_out),
        load=load,
        first=first,
        last=last,
        streamed=streamed,
        backlog_seen=backlog,
        verdicts=verdicts,
    )


# -- the figures ---------------------------------------------------------------------------------------------


def _figures(idle: Measured, loaded: Measured) -> list[Figure | Table]:
    what = "agent loaded"

    def fig(name: str, value: float, base: float, unit: str, target: str = "-", decimals: int = 0) -> Figure:
        return Figure(f"{what}: {name}", value, f"idle {name}", base, unit, target, decimals)

    lag_target = f"p99 < {LAG_TARGET_MS:.0f} ms"
    figures: list[Figure | Table] = [
        fig("CPU, % of one core", loaded.cpu_percent, idle.cpu_percent, "%", decimals=1),
        fig(
            "loop thread CPU, % of a core", loaded.loop_thread_percent, idle.loop_thread_percent, "%", "-", 1
        ),
        fig("VmRSS at the end", loaded.rss / MB, idle.rss / MB, "MB", decimals=1),
        fig("VmRSS most seen", loaded.rss_max / MB, idle.rss_max / MB, "MB", decimals=1),
        fig("VmHWM (peak RSS)", loaded.hwm / MB, idle.hwm / MB, "MB", decimals=1),
        fig("loop lag p50", loaded.loop["lag_p50_ms"], idle.loop["lag_p50_ms"], "ms", lag_target, 2),
        fig("loop lag p99", loaded.loop["lag_p99_ms"], idle.loop["lag_p99_ms"], "ms", lag_target, 2),
        fig("loop lag max", loaded.loop["lag_max_ms"], idle.loop["lag_max_ms"], "ms", "-", 2),
        Figure(
            f"{what}: loop lag p99",
            loaded.loop["lag_p99_ms"],
            "a bare loop's p99 beside it",
            loaded.bare_loop["lag_p99_ms"],
            "ms",
            lag_target,
            2,
        ),
    ]
    rows = []
    for m in (idle, loaded):
        vision = m.last.get("vision")
        rows.append(
            f"{m.label}: {m.seconds:.1f} s measured; load average (1 min) "
            f"{min(m.load):.2f}..{max(m.load):.2f} on {os.cpu_count()} cores; {m.threads} threads; "
            f"lag window {m.loop['window']} wake-ups "
            f"(of {m.loop['samples']} since start)"
        )
        first_backlog, last_backlog = m.first["sync"]["backlog"], m.last["sync"]["backlog"]
        drained = (
            f"backlog {first_backlog:,} -> {last_backlog:,} (least seen {min(m.backlog_seen):,}); "
            f"acked batches {m.first['sync']['acked_batches']:,} -> {m.last['sync']['acked_batches']:,}"
        )
        rows.append(f"  {drained}; {m.streamed:,} events streamed to the API client")
        busiest = ", ".join(f"{p:.1f}" for p in m.thread_percents[:5])
        rows.append(
            f"  event loop thread {m.loop_thread_percent:.1f}% CPU, waited for a CPU "
            f"{m.loop_waited_ms_per_s:.1f} ms/s, preempted {m.loop_preempted_per_s:.1f}/s; "
            f"busiest other threads % CPU: {busiest}"
        )
        bare = m.bare_loop
        rows.append(
            f"  a bare asyncio loop in a process beside it, same window: lag p50 {bare['lag_p50_ms']} ms, "
            f"p99 {bare['lag_p99_ms']} ms, max {bare['lag_max_ms']} ms ({bare['window']} wake-ups)"
        )
        if m.verdicts:
            rows.append("  checks streamed: " + ", ".join(f"{n} {v}" for v, n in m.verdicts.most_common()))
        if vision is not None:
            camera, first_vision = vision["camera"], m.first["vision"]
            rows.append(
                f"  camera {camera.get('fps')} fps, {camera.get('dropped_frames')} frames dropped; scanner "
                f"{_counts(first_vision, vision)}"
            )
    figures.append(Table("agent load: the windows", tuple(rows)))
    return figures


def _counts(first: dict[str, Any], last: dict[str, Any]) -> str:
    """The scanner's integer counters' growth over the window."""
    return ", ".join(
        f"{key} +{last[key] - first[key]:,}"
        for key in sorted(last)
        if isinstance(last[key], int) and isinstance(first.get(key), int) and key != "camera"
    )


@dataclass(frozen=True)
class Load:
    """What an agent is given: the camera with scanning, a backlog to drain, an API client streaming."""

    camera: bool = False
    backlog: bool = False
    streaming: bool = False


IDLE, LOADED = Load(), Load(camera=True, backlog=True, streaming=True)
# `split()`: the load's parts alone, to tell which one the loop's lag comes with.
PARTS = {
    "camera+scan": Load(camera=True),
    "sync drain": Load(backlog=True),
    "API stream": Load(streaming=True),
}


def measure_all(loads: dict[str, Load]) -> dict[str, Measured]:
    """Each agent of `loads`, one after another, against one broker, cloud database and ingest."""
    ticket_key = Ed25519PrivateKey.generate()
    measured: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory(prefix="railbot-bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        work = tmp / "work"
        work.mkdir()
        robots = {label: _robot(work / f"agent{n}", ticket_key) for n, label in enumerate(loads)}
        ingest_password = secrets.token_urlsafe(12)
        users = {INGEST_USER: ingest_password} | {str(r.id): r.password for r in robots.values()}
        broker = MosquittoBroker(
            directory=tmp / "mosquitto",
            users=users,
            acl=ACL,
            extra_config="log_type subscribe\nmax_queued_messages 100000\nmax_inflight_messages 20",
        )
        _frames(tmp / "frames", ticket_key)
        configs = {
            label: _config(work / f"agent{n}", broker, robots[label], tmp / "frames" if load.camera else None)
            for n, (label, load) in enumerate(loads.items())
        }
        broker.start()
        try:
            with sqlite_database(tmp) as url:
                upgrade(url)
                rig = Rig("SQLite", broker, url, work, {"agents": list(robots.values())}, ingest_password)
                asyncio.run(register(url, list(robots.values()), rig.store_id, rig.item_id))
                for label, load in loads.items():
                    if load.backlog:
                        fill_outbox(
                            configs[label].parent / "robot.db", rig.store_id, rig.item_id, BACKLOG_EVENTS
                        )
                start_ingest(rig)
                try:
                    for label, load in loads.items():
                        measured[label] = asyncio.run(
                            measure(label, configs[label], streaming=load.streaming)
                        )
                finally:
                    stop_ingest(rig)
                problems = ingest_problems(rig)
                if problems:
                    raise BenchSetupError(f"ingest logged {len(problems)} problems, first: {problems[0]}")
        finally:
            broker.stop()
    return measured


def run() -> list[Figure | Table]:
    measured = measure_all({"idle": IDLE, "loaded": LOADED})
    return _figures(measured["idle"], measured["loaded"])


def split() -> list[Figure | Table]:
    """The loaded agent's lag and CPU next to each part of its load alone (not in `make bench`: ~4 min)."""
    measured = measure_all({"idle": IDLE, **PARTS, "loaded": LOADED})
    rows = tuple(
        f"{label}: lag p50 {m.loop['lag_p50_ms']} ms, p99 {m.loop['lag_p99_ms']} ms, "
        f"max {m.loop['lag_max_ms']} ms; "
        f"bare loop beside p99 {m.bare_loop['lag_p99_ms']} ms; CPU {m.cpu_percent:.1f}% (loop thread "
        f"{m.loop_thread_percent:.1f}%, waited for a CPU {m.loop_waited_ms_per_s:.1f} ms/s); load "
        f"{min(m.load):.2f}..{max(m.load):.2f}"
        for label, m in measured.items()
    )
    return [*_figures(measured["idle"], measured["loaded"]), Table("agent load, part by part", rows)]


if __name__ == "__main__":
    for figure in split():
        print(figure.line(), flush=True)
