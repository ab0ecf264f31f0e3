"""What every handler of the cloud service shares: database sessions, the key ring, token lookups, the
face enrolment workers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.desks.face_enrolment import EnrolmentWorkers
from cloud_sync.desks.purchases import PurchaseDesk
from cloud_sync.desks.signing import KeyRing
from cloud_sync.web.auth import TokenAuthenticator
from cloud_sync.web.page_cache import PageCache


@dataclass
class CloudContext:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keys: KeyRing
    tokens: TokenAuthenticator
    item_pages: PageCache
    purchases: PurchaseDesk
    faces: EnrolmentWorkers


CONTEXT = web.AppKey("railbot_context", CloudContext)


def context(app: web.Application) -> CloudContext:
    return app[CONTEXT]
