"""The engineers' UI against the robot's real local API on a unix socket (simulated devices, a real SQLite
store, the e-stop and MCU watchers of the agent feeding the status), and the pilot's helpers.

Nothing between the UI and the API is mocked: the app's own client talks HTTP over the socket."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_textual_snapshot  # type: ignore[import-untyped]  # the plugin ships no py.typed
from sqlalchemy import Engine, insert
from syrupy.extensions.single_file import SingleFileSnapshotExtension
from textual.pilot import Pilot

from hardware.factory import Devices, open_devices
from hardware.sim import SimDevices
from robot_agent.api.engineers import load_card_pepper
from robot_agent.api.server import LocalApi
from robot_agent.config import load_config
from robot_agent.devices import CardTaps, DeviceWatch
from robot_agent.live import LiveEvents
from robot_agent.status import RobotStatus
from robot_agent.store.database import open_store
from robot_agent.tickets import TicketDesk
from robot_agent.tui.app import TuiApp
from robot_agent.tui.client import ApiClient
from tests.integration.test_local_api import (
    ITEM_ID,
    PASSWORD,
    PEPPER,
    ROBOT,
    STORE_ID,
    TABLES,
    add_engineer,
    write_config,
)

__all__ = ["ITEM_ID", "PASSWORD", "STORE_ID", "add_engineer"]


def _snapshot_plugin_on_syrupy_5() -> None:
    """pytest-textual-snapshot 1.1.0 sets syrupy 4's private `_file_extension` and overrides its private
    reader; syrupy 5 (the one that runs on pytest 9, pyproject's override) made both public. Without this the
    snapshots are stored as `.raw` and a stored one is compared without its ids normalized."""
    extension: Any = pytest_textual_snapshot.SVGImageExtension
    extension.file_extension = "svg"
    read = SingleFileSnapshotExtension.read_snapshot_data_from_location

    def read_normalized(self: Any, *args: Any, **kwargs: Any) -> Any:
        data = read(self, *args, **kwargs)
        return pytest_textual_snapshot.normalize_svg(data) if isinstance(data, str) else data

    extension.read_snapshot_data_from_location = read_normalized


_snapshot_plugin_on_syrupy_5()

WAIT_S = 10.0  # the bound on any wait for the UI to show something (a failure, never a timing claim)


@dataclass
class Robot:
    api: LocalApi
    store: Engine
    devices: Devices
    live: LiveEvents
    status: RobotStatus
    socket: Path
    syncs: list[int]
    now: list[float] = field(default_factory=lambda: [1_000.0])

    @property
    def sim(self) -> SimDevices:
        assert self.devices.simulator is not None
        return self.devices.simulator

    def app(self) -> TuiApp:
        return TuiApp(ApiClient(self.socket), status_every_s=0.2, retry_s=0.2, cursor_blink=False)

    def tap_when_waiting(self, uid: bytes) -> asyncio.Task[None]:
        """Tap `uid` once the next card login waits for it (the live event says so)."""
        waiting = self.live.subscribe(["card_login"])

        async def tap() -> None:
            async with waiting:
                async for _ in waiting:
                    break
            self.sim.tap_card(0, uid)

        return asyncio.create_task(tap())


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short folder for the socket: pytest's tmp_path can be past a unix socket's 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="tui-", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture
async def robot(tmp_path: Path, socket_dir: Path) -> AsyncIterator[Robot]:
    config = load_config(write_config(tmp_path, socket_dir / "api.sock"))
    config.api.card_key_file.write_bytes(PEPPER)
    config.api.card_key_file.chmod(0o600)
    store = open_store(config.storage.database)
    with store.begin() as conn:
        conn.execute(
            insert(TABLES["stores"]).values(
                id=STORE_ID, name="Buffet", description="", logo_url="", store_type="SHOP", sync_scope="all"
            )
        )
        conn.execute(
            insert(TABLES["store_items"]).values(
                id=ITEM_ID,
                store_id=STORE_ID,
                name="Tea",
                description="",
                balance=3,
                price_penny=100,
                sync_scope="all",
            )
        )
        conn.execute(  # the store serves the robot's train: its catalogue (GET /catalogue)
            insert(TABLES["train_stores"]).values(
                id=uuid.uuid4(),
                store_id=STORE_ID,
                train_number=742,
                train_date=dt.datetime.now(dt.UTC),
                sync_scope="all",
            )
        )
    devices = await open_devices("simulated", None, 115200)
    live = LiveEvents()
    status = RobotStatus(ROBOT)

    def tell(kind: str, data: dict[str, Any]) -> None:  # as the agent's runtime does
        live.publish(kind, data)

    status.listen(tell)
    status.add_source("assignment", lambda: config.assignment.model_dump(mode="json"))
    syncs: list[int] = []

    async def sync_now() -> None:
        syncs.append(1)

    now = [1_000.0]
    api = LocalApi(
        socket_path=config.api.socket,
        status=status,
        live=live,
        store=store,
        devices=devices,
        tickets=TicketDesk(store, config),
        sync_now=sync_now,
        card_taps=devices.card_reader.taps(),
        card_pepper=load_card_pepper(config.api.card_key_file),
        card_login_s=config.api.card_login_s,
        monotonic=lambda: now[0],
    )
    watch = DeviceWatch(devices, status, live, CardTaps())
    tasks = [
        asyncio.create_task(api.run()),
        asyncio.create_task(watch.estop()),
        asyncio.create_task(watch.mcu_link()),
    ]
    await asyncio.wait_for(api.listening.wait(), WAIT_S)
    yield Robot(api, store, devices, live, status, config.api.socket, syncs, now)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await devices.close()
    store.dispose()


async def until(pilot: Pilot[None], what: str, check: Callable[[], object]) -> None:
    """Pump the app until `check()` is true; fail naming `what` if it is not within WAIT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"the UI never showed {what}")
        await pilot.pause(0.02)


def text_of(app: TuiApp, selector: str) -> str:
    """What a Static shows, as plain text."""
    from textual.widgets import Static

    return str(app.screen.query_one(selector, Static).render())


def keys(text: str) -> list[str]:
    """The key presses that type `text`."""
    return ["space" if c == " " else c for c in text]


async def log_in_by_password(pilot: Pilot[None], login: str, password: str = PASSWORD) -> None:
    await pilot.press("p")
    await pilot.press(*keys(login), "enter", *keys(password), "enter")
