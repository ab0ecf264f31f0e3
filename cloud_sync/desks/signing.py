"""Ticket-signing keys: public halves in the database, private halves as 0600 files in the keys folder,
and the card pepper that turns auth-card UIDs into keyed hashes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import SigningKey
from cloud_sync.errors import CloudSyncError
from models import card_keys
from models.base_api import TrustedKeyOut, TrustList
from models.columns import utcnow
from models.keyfiles import KeyFileProblem, ed25519_pem, write_private_file
from models.tickets import TrustedKey, key_id

log = logging.getLogger(__name__)

DEFAULT_KEYS_DIR = Path("var/keys")
_PEPPER_FILE = "card-pepper"

# Every instance re-reads which key signs at most this often, so it signs with a newly rotated key within
# ACTIVE_KEY_TTL seconds of the rotation (decisions §25).
ACTIVE_KEY_TTL = 5.0
# A retired key stays in its trust period this long after the rotation, so an instance that has not yet
# re-read (at most ACTIVE_KEY_TTL behind) still signs inside it; twice the TTL leaves room for a slow request.
RETIREMENT_GRACE = dt.timedelta(seconds=2 * ACTIVE_KEY_TTL)


class NoSigningKey(CloudSyncError):
    """There is no key to sign tickets with: none was ever made, or its private half is not here."""


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
    read_at: float  # time.monotonic() when the database named it active


class KeyRing:
    """The keys folder and the signing keys table, together."""

    def __init__(self, keys_dir: Path, active_ttl: float = ACTIVE_KEY_TTL) -> None:
        self.keys_dir = keys_dir
        self._active_ttl = active_ttl
        self._active: ActiveKey | None = None
        self._pepper: bytes | None = None

    def _key_path(self, kid_hex: str) -> Path:
        return self.keys_dir / f"ticket-{kid_hex}.pem"

    async def rotate(self, session: AsyncSession) -> SigningKey:
        """Add a new active key; the previous one stops signing but stays trusted for what it signed.

        The previous key's trust period ends RETIREMENT_GRACE after now: other instances go on signing with
        it until they re-read the active key (at most ACTIVE_KEY_TTL later), and what they sign must verify.
        """
        private = Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        kid_hex = key_id(raw).hex()
        _write_private(self._key_path(kid_hex), ed25519_pem(private))
        now = utcnow()
        for old in (await session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None)))).all():
            old.retired_at = now + RETIREMENT_GRACE
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
        """The key that signs new tickets now, as the database said at most `active_ttl` seconds ago.

        Take a ticket's issue time after this returns: a key read from the database is in its trust period
        from then on, and one remembered is so for RETIREMENT_GRACE after another process retires it.
        """
        if self._active is not None and time.monotonic() - self._active.read_at < self._active_ttl:
            return self._active
        read_at = time.monotonic()
        row = (
            await session.exec(
                select(SigningKey)
                .where(col(SigningKey.retired_at).is_(None))
                .order_by(col(SigningKey.created_at).desc())
            )
        ).first()
        if row is None:
            raise NoSigningKey("no ticket-signing key yet: run `cloud-sync keys rotate`")
        if self._active is not None and self._active.kid.hex() == row.kid:
            self._active = dataclasses.replace(self._active, read_at=read_at)
            return self._active
        try:
            pem = _read_private(self._key_path(row.kid))
        except CloudSyncError as err:
            raise NoSigningKey(f"ticket-signing key {row.kid}: {err}") from err
        loaded = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise CloudSyncError(f"{self._key_path(row.kid)} is not an Ed25519 key")
        self._active = ActiveKey(kid=bytes.fromhex(row.kid), private_key=loaded, read_at=read_at)
        log.info("ticket signing key in use kid=%s", row.kid)
        return self._active

    def card_pepper(self) -> bytes:
        """The fleet's card pepper, made on first use: robots get a copy at provisioning, to match cards
        offline (decision 48). Never logged."""
        if self._pepper is None:
            path = self.keys_dir / _PEPPER_FILE
            if not path.exists():
                _write_private(path, secrets.token_bytes(card_keys.PEPPER_BYTES))
            self._pepper = _read_private(path)
        return self._pepper

    def card_key(self, uid: str) -> str:
        """The keyed hash stored for an auth card's UID (the UID itself is never stored or logged)."""
        return card_keys.card_key(self.card_pepper(), uid)
