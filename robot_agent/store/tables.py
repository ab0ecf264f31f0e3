"""The robot's own tables (not the seed's): the outbox and what sync needs to keep."""

from __future__ import annotations

import uuid

from sqlalchemy import Integer, LargeBinary, Uuid
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from models.columns import varchar


class RobotTable(SQLModel, registry=registry()):
    """Parent of every table in the robot's database; its `metadata` is that database's schema."""


ROBOT_METADATA = RobotTable.metadata


class OutboxRow(RobotTable, table=True):
    """An event the robot produced and the cloud has not yet acknowledged (docs/sync.md, "A batch").

    `seq` is the robot's sequence number: AUTOINCREMENT, so SQLite never hands out a number again, even after
    the outbox was emptied and the database reopened. `data` is the event's CBOR, encoded once, when written.
    `batch` is set when the event is first sent; a batch sent again keeps its id and its events.
    """

    __tablename__ = "outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: int | None = Field(default=None, primary_key=True, sa_type=Integer)
    id: uuid.UUID = Field(sa_type=Uuid, unique=True)
    type: str = varchar(40)
    wall_ms: int = Field(sa_type=Integer)
    mono_ms: int = Field(sa_type=Integer)
    boot: uuid.UUID = Field(sa_type=Uuid)
    data: bytes = Field(sa_type=LargeBinary)
    batch: uuid.UUID | None = Field(default=None, sa_type=Uuid, nullable=True, index=True)


class RejectedEvent(RobotTable, table=True):
    """An event the cloud dead-lettered, set aside with the reason so the outbox moves on; an engineer sees
    these (nothing is dropped silently)."""

    __tablename__ = "rejected_events"

    seq: int = Field(primary_key=True, sa_type=Integer)
    id: uuid.UUID = Field(sa_type=Uuid, unique=True)
    type: str = varchar(40)
    wall_ms: int = Field(sa_type=Integer)
    data: bytes = Field(sa_type=LargeBinary)
    batch: uuid.UUID = Field(sa_type=Uuid)
    reason: str = varchar(255)
