"""Ticket-signing keys: public halves in the database, private halves as 0600 files in the keys folder,
and the card pepper that turns auth-card UIDs into keyed hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.errors import CloudSyncError
from cloud_sync.tables import SigningKey
from models.base_api import TrustedKeyOut, TrustList
from models.columns import utcnow
from models.keyfiles import KeyFileProblem, ed25519_pem, write_private_file
from models.tickets import TrustedKey, key_id

log = logging.getLogger(__name__)

DEFAULT_KEYS_DIR = Path("var/keys")
_PEPPER_FILE = "card-pepper"


def _write_private(path: Path, data: bytes) -> None:
    try:
        write_private_file(path, data)
    except FileExistsError as err:
        raise CloudSyncError(f"{path} already exists") from err
    except KeyFileProblem as err:
        raise CloudSyncError(str(err)) from err


def _read_private(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise CloudSyncError(f"{path} is readable by others (mode {mode:04o}); run `chmod 600` on it")
        return path.read_bytes()
    except FileNotFoundError as err:
        raise CloudSyncError(f"{path} is missing: the keys folder does not hold this key") from err
    except OSError as err:
        raise CloudSyncError(f"cannot read {path}: {err.strerror}") from err


async def trusted_keys(session: AsyncSession) -> list[TrustedKey]:
    """Every key a ticket may be signed with, with the period it signed in (no private key needed)."""
    rows = (await session.exec(select(SigningKey).order_by(col(SigningKey.created_at)))).all()
    return [
        TrustedKey(
            kid=bytes.fromhex(row.kid),
            public_key=bytes.fromhex(row.public_key),
            valid_from=row.created_at,
            valid_to=row.retired_at,
        )
        for row in rows
    ]


def trust_document(keys: list[TrustedKey]) -> TrustList:
    """The trust list as `GET /base_api/keys` serves it and `robot provision` writes it (JWK-style)."""
    return TrustList(
        keys=[
            TrustedKeyOut(
                kid=key.kid.hex(),
                x=base64.urlsafe_b64encode(key.public_key).rstrip(b"=").decode(),
                valid_from=key.valid_from,
                valid_to=key.valid_to,
            )
            for key in keys
        ]
    )


@dataclass(frozen=True)
class ActiveKey:
    kid: bytes
    private_key: Ed25519PrivateKey


class KeyRing:
    """The keys folder and the signing keys table, together."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self._active: ActiveKey | None = None
        self._pepper: bytes | None = None

    def _key_path(self, kid_hex: str) -> Path:
        return self.keys_dir / f"ticket-{kid_hex}.pem"

    async def rotate(self, session: AsyncSession) -> SigningKey:
        """Add a new active key; the previous one stops signing but stays trusted for what it signed."""
        private = Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        kid_hex = key_id(raw).hex()
        _write_private(self._key_path(kid_hex), ed25519_pem(private))
        now = utcnow()
        for old in (await session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None)))).all():
            old.retired_at = now
            session.add(old)
        row = SigningKey(kid=kid_hex, public_key=raw.hex(), created_at=now)
        session.add(row)
        await session.commit()
        self._active = None
        log.info("ticket signing key rotated kid=%s", kid_hex)
        return row

    async def all_keys(self, session: AsyncSession) -> list[SigningKey]:
        return list((await session.exec(select(SigningKey).order_by(col(SigningKey.created_at)))).all())

    async def trust_list(self, session: AsyncSession) -> list[TrustedKey]:
        """Every key a ticket may be signed with, with the period it signed in."""
        return await trusted_keys(session)

    async def active(self, session: AsyncSession) -> ActiveKey:
        """The key that signs new tickets now."""
        if self._active is not None:
            return self._active
        row = (
            await session.exec(
                select(SigningKey)
                .where(col(SigningKey.retired_at).is_(None))
                .order_by(col(SigningKey.created_at).desc())
            )
        ).first()
        if row is None:
            raise CloudSyncError("no ticket-signing key yet: run `cloud-sync keys rotate`")
        loaded = serialization.load_pem_private_key(_read_private(self._key_path(row.kid)), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise CloudSyncError(f"{self._key_path(row.kid)} is not an Ed25519 key")
        self._active = ActiveKey(kid=bytes.fromhex(row.kid), private_key=loaded)
        return self._active

    def card_key(self, uid: str) -> str:
        """The keyed hash stored for an auth card's UID (the UID itself is never stored or logged)."""
        if self._pepper is None:
            path = self.keys_dir / _PEPPER_FILE
            if not path.exists():
                _write_private(path, secrets.token_bytes(32))
            self._pepper = _read_private(path)
        normalized = uid.strip().replace(":", "").lower()
        return hmac.new(self._pepper, normalized.encode(), hashlib.sha256).hexdigest()
