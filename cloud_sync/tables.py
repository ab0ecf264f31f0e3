"""The cloud's own tables, beside the seed's: API tokens, ticket-signing keys, issued tokens, revocations,
robot assignments. Foreign keys into the seed's tables point at those tables' columns directly."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import Column, Date, Enum, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from models.base_server import BASE_METADATA
from models.columns import UtcDateTime, created_at, uuid_pk, varchar
from models.store_server import STORE_METADATA


class CloudTable(SQLModel, registry=registry()):
    """Parent of the cloud's own tables."""


CLOUD_METADATA = CloudTable.metadata


def _ref(table: str, *, nullable: bool, primary_key: bool = False) -> Column[uuid.UUID]:
    metadata = STORE_METADATA if table in STORE_METADATA.tables else BASE_METADATA
    return Column(
        Uuid,
        ForeignKey(metadata.tables[table].c.id, ondelete="CASCADE"),
        nullable=nullable,
        primary_key=primary_key,
        index=not primary_key,
    )


class Role(enum.StrEnum):
    """Who a bearer token speaks for."""

    ADMIN = "admin"
    STORE = "store"
    ROBOT = "robot"


class ApiToken(CloudTable, table=True):
    """A bearer token; only the SHA-256 of the token is kept (tokens are 256-bit random, so no slow hash)."""

    __tablename__ = "api_tokens"

    id: uuid.UUID = uuid_pk()
    role: Role = Field(
        sa_type=Enum(Role, name="api_role_enum", values_callable=lambda e: [m.value for m in e])
    )
    store_id: uuid.UUID | None = Field(default=None, sa_column=_ref("stores", nullable=True))
    robot_id: uuid.UUID | None = Field(default=None, sa_column=_ref("robots", nullable=True))
    token_hash: str = varchar(64, unique=True)
    label: str | None = varchar(100, nullable=True, default=None)
    created_at: dt.datetime = created_at()


class SigningKey(CloudTable, table=True):
    """A ticket-signing key's public half; the private half is a file in the keys folder.

    It signs from `created_at` until `retired_at`; the trust list keeps it so that tickets it signed
    verify until they expire.
    """

    __tablename__ = "signing_keys"

    kid: str = Field(sa_type=String(16), primary_key=True)  # hex of the 8-byte COSE kid
    public_key: str = varchar(64)  # hex of the raw 32-byte Ed25519 public key
    created_at: dt.datetime = created_at()
    retired_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class TicketToken(CloudTable, table=True):
    """The signed token issued for a ticket (the QR's content)."""

    __tablename__ = "ticket_tokens"

    ticket_id: uuid.UUID = Field(sa_column=_ref("tickets", nullable=False, primary_key=True))
    kid: str = Field(sa_type=String(16), foreign_key="signing_keys.kid", index=True)
    token: str = Field(sa_type=Text)
    issued_at: dt.datetime = Field(sa_type=UtcDateTime)
    expires_at: dt.datetime = Field(sa_type=UtcDateTime)


class TicketRevocation(CloudTable, table=True):
    __tablename__ = "ticket_revocations"

    ticket_id: uuid.UUID = Field(sa_column=_ref("tickets", nullable=False, primary_key=True))
    reason: str = varchar(255)
    revoked_at: dt.datetime = created_at()


class RobotAssignment(CloudTable, table=True):
    """Which train a robot serves on which date."""

    __tablename__ = "robot_assignments"
    __table_args__ = (UniqueConstraint("robot_id", "train_date"),)

    id: uuid.UUID = uuid_pk()
    robot_id: uuid.UUID = Field(sa_column=_ref("robots", nullable=False))
    train_number: int = Field(sa_type=Integer, index=True)
    train_date: dt.date = Field(sa_type=Date)
    created_at: dt.datetime = created_at()
