"""The cloud service's aiohttp application: both APIs, the OpenAPI document, JSON errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.migrate import require_current
from cloud_sync.desks.face_enrolment import EnrolmentWorkers, FaceSettings
from cloud_sync.desks.purchases import PurchaseDesk
from cloud_sync.desks.signing import KeyRing
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.downsync import DownSyncService
from cloud_sync.sync.ingest import Ingest
from cloud_sync.sync.ingest_worker import IngestWorker
from cloud_sync.web import base_api, faces_api, store_api
from cloud_sync.web.auth import TokenAuthenticator
from cloud_sync.web.context import CONTEXT, CloudContext
from cloud_sync.web.openapi import document
from cloud_sync.web.page_cache import PageCache
from cloud_sync.web.routing import Api, HTTPError, Principal, json_errors

log = logging.getLogger(__name__)

# Request bodies are small JSON documents; anything bigger is refused before it is read.
MAX_BODY_BYTES = 64 * 1024


def build_api() -> Api:
    api = Api()
    store_api.register(api)
    base_api.register(api)
    faces_api.register(api)
    return api


def openapi_document(api: Api) -> dict[str, Any]:
    return document(
        api,
        title="railbot cloud-sync",
        version=version("railbot"),
        description="The seed's Store API (/store_api) and Base API (/base_api), served by railbot's cloud.",
    )


@web.middleware
async def database_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A lost database connection is the service's trouble, not the client's: 503, and the pool reconnects."""
    try:
        return await handler(request)
    except DBAPIError as err:
        # Bad data never gets here (models validate it; commit_or_409 turns conflicts into 409s): what is
        # left is a connection that broke or a server that went away.
        if not (err.connection_invalidated or isinstance(err, OperationalError | InterfaceError)):
            raise
        log.warning(
            "database unavailable method=%s path=%s: %s",
            request.method,
            request.path,
            type(err.orig).__name__,
        )
        raise HTTPError(503, "the database is unavailable: try again", {"Retry-After": "1"}) from err


def _start_sync(engine: AsyncEngine, broker: BrokerLogin) -> list[asyncio.Task[None]]:
    ingest = IngestWorker(Ingest(engine), broker)
    down = DownSyncService(engine, dataclasses.replace(broker, client_id=f"{broker.client_id}-downsync"))
    log.info("sync running broker=%s", broker.url)
    return [
        asyncio.create_task(ingest.run(), name="ingest"),
        asyncio.create_task(down.run(), name="down-sync"),
    ]


def create_app(
    db_url: str,
    keys_dir: Path,
    *,
    check_migrated: bool = True,
    page_cache_ttl: float = 1.0,
    broker: BrokerLogin | None = None,
    faces: FaceSettings | None = None,
) -> web.Application:
    """The whole service; the database is opened (and checked to be migrated) when the app starts. With a
    `broker`, the app also runs sync: ingest of the robots' batches and down-sync (docs/sync.md). With
    `faces`, it loads the face models and enrols photos (without them, or when they cannot be loaded,
    enrolment answers 503 and everything else is served)."""
    app = web.Application(middlewares=[json_errors, database_errors], client_max_size=MAX_BODY_BYTES)
    api = build_api()
    spec = json.dumps(openapi_document(api)).encode()

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        engine = create_engine(db_url)
        try:
            if check_migrated:
                await require_current(engine, db_url)
            sessions = session_factory(engine)
            app[CONTEXT] = CloudContext(
                engine=engine,
                sessions=sessions,
                keys=KeyRing(keys_dir),
                tokens=TokenAuthenticator(sessions),
                item_pages=PageCache(page_cache_ttl),
                purchases=PurchaseDesk(engine),
                faces=EnrolmentWorkers(faces),
            )
            app[CONTEXT].purchases.start()
            await app[CONTEXT].faces.start()
            sync = [] if broker is None else _start_sync(engine, broker)
            try:
                yield
            finally:
                for task in sync:
                    task.cancel()
                await asyncio.gather(*sync, return_exceptions=True)
                await app[CONTEXT].faces.stop()
                await app[CONTEXT].purchases.stop()
        finally:
            await engine.dispose()

    async def authenticate(request: web.Request, token: str) -> Principal | None:
        return await request.app[CONTEXT].tokens(request, token)

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=spec, content_type="application/json")

    app.cleanup_ctx.append(lifetime)
    api.install(app, authenticate)
    app.router.add_get("/openapi.json", openapi)
    return app
