"""Face enrolment through the API (`cloud-sync serve` on SQLite) against the same photos enrolled in process.

Photos: set-up's four portraits (obama x3, biden: 0.6 to 2.1 megapixels, each accepted). The baseline is the
cloud's own enrolment worker (quality gate, YuNet, SFace and dlib embeddings) called directly in this process
on one thread, median of three rounds. Through the API: one photo per request, one request at a time (ms per
photo, median), then four clients each sending requests of four photos for a few seconds (photos per second),
with 1 and 2 worker threads; the last line of each is the server's resident memory after the run.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import cv2

from bench.report import Figure
from cloud_sync.desks.face_enrolment import EnrolmentWorkers, FaceSettings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "var" / "models"
TEST_FACES = ROOT / "var" / "test-faces"
PORTRAITS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
BIN = Path(sys.executable).parent
SEQUENTIAL_ROUNDS = 3
LOAD_SECONDS = 8.0
CLIENTS = 4


def _photos() -> dict[str, bytes]:
    photos = {}
    for name in PORTRAITS:
        path = TEST_FACES / name
        if not path.is_file():
            raise SystemExit(f"{path.relative_to(ROOT)} is missing: `make setup` fetches it")
        photos[name] = path.read_bytes()
    return photos


async def _direct(photos: dict[str, bytes]) -> float:
    """Median ms per photo through the enrolment workers themselves (one thread), without HTTP or database."""
    workers = EnrolmentWorkers(FaceSettings(MODELS))
    await workers.start()
    if workers.unavailable is not None:
        raise SystemExit(f"{workers.unavailable} (`make setup` fetches and builds them)")
    try:
        await workers.enrol([photos[PORTRAITS[0]]])  # as the API's first request, unmeasured
        times = []
        for _ in range(SEQUENTIAL_ROUNDS):
            for data in photos.values():
                began = time.perf_counter()
                await workers.enrol([data])
                times.append((time.perf_counter() - began) * 1000)
        return statistics.median(times)
    finally:
        await workers.stop()


def _cli(*args: str) -> str:
    return subprocess.run([str(BIN / "cloud-sync"), *args], check=True, capture_output=True, text=True).stdout


@contextmanager
def _server(db: str, work: Path, workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    log = (work / f"serve-{workers}.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "cloud-sync"), "serve", "--db", db, "--port", "0", "--keys-dir", str(work / "keys"),
         "--models-dir", str(MODELS), "--face-workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = (work / f"serve-{workers}.log").read_text()
            if "serving host=" in text:
                port = text.split("serving host=127.0.0.1 port=")[1].split()[0]
                yield f"http://127.0.0.1:{port}", process
                return
            if process.poll() is not None:
                raise SystemExit(f"cloud-sync serve stopped:\n{text}")
            time.sleep(0.2)
        raise SystemExit("cloud-sync serve did not start in 60 s")
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _through_api(base: str, token: str, photos: dict[str, bytes]) -> tuple[float, float]:
    """(median ms per one-photo request, photos per second under CLIENTS clients of four-photo requests)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base, headers=headers) as http:
        async with http.post("/base_api/admin/user", json={"name": "Bench"}) as response:
            user = (await response.json())["id"]
        path = f"/base_api/admin/user/{user}/face"

        async def post(*names: str) -> None:
            form = aiohttp.FormData()
            for name in names:
                form.add_field("image", photos[name], filename=name, content_type="image/jpeg")
            async with http.post(path, data=form) as response:
                answer = await response.json()
                if response.status != 200 or answer["accepted"] != len(names):
                    raise SystemExit(f"enrolment failed: {response.status} {answer}")

        await post(PORTRAITS[0])  # the first photo of each size builds YuNet's input
        sequential = []
        for _ in range(SEQUENTIAL_ROUNDS):
            for name in PORTRAITS:
                began = time.perf_counter()
                await post(name)
                sequential.append((time.perf_counter() - began) * 1000)
        done = 0
        stop = time.monotonic() + LOAD_SECONDS

        async def client() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await post(*PORTRAITS)
                done += len(PORTRAITS)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        rate = done / (time.perf_counter() - began)
    return statistics.median(sequential), rate


def run() -> list[Figure]:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # as `cloud-sync serve` does
    photos = _photos()
    direct_ms = asyncio.run(_direct(photos))
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-faces-") as folder:
        work = Path(folder)
        db = f"sqlite:///{work / 'cloud.db'}"
        _cli("migrate", "--db", db)
        token = _cli("token", "create", "--db", db, "--role", "admin").strip()
        for workers in (1, 2):
            with _server(db, work, workers) as (base, process):
                one_ms, rate = asyncio.run(_through_api(base, token, photos))
                rss = _rss_mb(process.pid)
            label = f"{workers} worker{'s' if workers > 1 else ''}"
            figures += [
                Figure(f"enrol 1 photo per request, {label}", one_ms, "in process", direct_ms, "ms/photo"),
                Figure(
                    f"enrol, {CLIENTS} clients x 4 photos, {label}",
                    rate,
                    "in process",
                    1000 / direct_ms,
                    "photos/s",
                ),
                Figure(f"serve resident memory, {label}", rss, "-", 0.0, "MB"),
            ]
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure.line(), flush=True)
