"""Bearer tokens: made by `cloud-sync token create`, shown once, kept only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import ApiToken, Role
from cloud_sync.errors import CloudSyncError
from cloud_sync.web.routing import Principal
from models.base_server import Robot
from models.store_server import Store

TOKEN_PREFIX = "rbt_"


def token_hash(token: str) -> str:
    """The stored form of a token. Tokens carry 256 random bits, so a fast hash cannot be brute-forced."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def create_token(
    session: AsyncSession,
    role: Role,
    *,
    store_id: uuid.UUID | None = None,
    robot_id: uuid.UUID | None = None,
    label: str | None = None,
) -> str:
    """Store a new token's hash and return the token itself, which is never stored."""
    if role is Role.STORE and store_id is None:
        raise CloudSyncError("a store token needs --store-id")
    if role is Role.ROBOT and robot_id is None:
        raise CloudSyncError("a robot token needs --robot-id")
    if role is not Role.STORE and store_id is not None:
        raise CloudSyncError("--store-id goes with --role store only")
    if role is not Role.ROBOT and robot_id is not None:
        raise CloudSyncError("--robot-id goes with --role robot only")
    if store_id is not None and await session.get(Store, store_id) is None:
        raise CloudSyncError(f"no store with id {store_id}")
    if robot_id is not None and await session.get(Robot, robot_id) is None:
        raise CloudSyncError(f"no robot with id {robot_id}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(role=role, store_id=store_id, robot_id=robot_id, token_hash=token_hash(token), label=label)
    )
    await session.commit()
    return token


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    """Every token's record, oldest first (the records hold hashes only)."""
    return list((await session.exec(select(ApiToken).order_by(col(ApiToken.created_at)))).all())


async def revoke_token(session: AsyncSession, token_id: uuid.UUID) -> None:
    """Delete a token; services that remembered it stop accepting it within their cache's few seconds."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise CloudSyncError(f"no token with id {token_id}")
    await session.delete(row)
    await session.commit()


class TokenAuthenticator:
    """Looks tokens up by hash, remembering answers for a few seconds.

    Every request needs one lookup; the short memory keeps that off the database on busy routes. A deleted
    token (or the store it belongs to) stops working within `ttl` seconds on every instance.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 5.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._known: dict[str, tuple[float, Principal | None]] = {}

    async def __call__(self, request: web.Request, token: str) -> Principal | None:
        digest = token_hash(token)
        now = time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            row = (await session.exec(select(ApiToken).where(ApiToken.token_hash == digest))).first()
        principal = (
            Principal(token_id=row.id, role=row.role, store_id=row.store_id, robot_id=row.robot_id)
            if row is not None
            else None
        )
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[digest] = (now + self._ttl, principal)
        return principal

    def forget(self) -> None:
        """Drop every remembered answer (after tokens were deleted in this process)."""
        self._known.clear()
