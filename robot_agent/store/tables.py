"""The robot's tables: the outbox and rejected events (what it produced), and its copies of the cloud's data
that down-sync keeps (what it must know), with the cursor per scope."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from models.columns import UtcDateTime, varchar


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


# -- what the robot did (robot_agent/store/activity.py writes each with its outbox event) -------------------


class RobotPurchase(RobotTable, table=True):
    """A sale made on the robot; its lines in `purchase_items`."""

    __tablename__ = "purchases"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    store_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    user_id: uuid.UUID = Field(sa_type=Uuid)
    is_default_ready: bool = Field(sa_type=Boolean)
    at: dt.datetime = Field(sa_type=UtcDateTime)
    event_seq: int = Field(sa_type=Integer)  # the outbox event that carries it to the cloud
    # The compartment the order waits in until handed over (robot_agent/selling.py); None: not kept here.
    compartment: int | None = Field(default=None, sa_type=Integer, nullable=True)


class RobotPurchaseItem(RobotTable, table=True):
    __tablename__ = "purchase_items"

    purchase_id: uuid.UUID = Field(sa_type=Uuid, foreign_key="purchases.id", primary_key=True)
    item_id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    count: int = Field(sa_type=Integer)


class TicketCheck(RobotTable, table=True):
    """A ticket the robot checked, and its verdict."""

    __tablename__ = "ticket_checks"

    seq: int = Field(sa_type=Integer, primary_key=True)  # its outbox event's
    ticket_id: uuid.UUID | None = Field(default=None, sa_type=Uuid, nullable=True, index=True)
    verdict: str = varchar(40)
    train_number: int = Field(sa_type=Integer)
    at: dt.datetime = Field(sa_type=UtcDateTime)
    method: str = varchar(20, default="camera")


class UsedTicket(RobotTable, table=True):
    """The robot's ledger of tickets it accepted: written with the check, in its transaction, so a ticket
    shown again is refused (`already_used`) even before the cloud hears of it."""

    __tablename__ = "used_tickets"

    ticket_id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    seq: int = Field(sa_type=Integer)  # the accepting check's outbox event
    at: dt.datetime = Field(sa_type=UtcDateTime)


class TaskDelivery(RobotTable, table=True):
    """A store task (an order to deliver) the robot moved on."""

    __tablename__ = "task_deliveries"

    seq: int = Field(sa_type=Integer, primary_key=True)
    task_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    is_ready: bool = Field(sa_type=Boolean)
    at: dt.datetime = Field(sa_type=UtcDateTime)


class EngineerActionRecord(RobotTable, table=True):
    """What an engineer did on the robot's terminal."""

    __tablename__ = "engineer_actions"

    seq: int = Field(sa_type=Integer, primary_key=True)
    engineer_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    action: str = varchar(64)
    detail: str = varchar(255)
    at: dt.datetime = Field(sa_type=UtcDateTime)


class EnrolledFace(RobotTable, table=True):
    """A passenger's face the robot can recognise: one embedding, sealed (AES-GCM under the face key, the
    row's id, user and embedder bound to it; robot_agent/faces/sealing.py), never stored in the clear. Rows
    are never updated: a changed face is a new row. `source` says where it came from: "local" (`robot-agent
    faces enroll`) or "cloud" (down-sync)."""

    __tablename__ = "faces"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    user_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    embedder: str = varchar(40)  # models/faces/choice.py EMBEDDERS: the model that made the embedding
    embedding: bytes = Field(sa_type=LargeBinary)  # sealed; `db rows` masks the column by its name
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    source: str = varchar(10)
    # The down-sync scope a "cloud" face last came in (as ReplicaTable's), so that a snapshot of that scope,
    # or the scope withdrawn, takes it away; None for a local face.
    sync_scope: str | None = varchar(80, nullable=True, default=None)


# -- copies of the cloud's data (models/sync_changes.py REPLICATED; docs/sync.md, "Down-sync") -------------
# Each has the columns that travel, plus `sync_scope`: the scope the row last came in, which a snapshot of
# that scope uses to find rows the cloud no longer has. No foreign keys: rows arrive in the cloud's order,
# and a scope may name a row of another.


class ReplicaTable(RobotTable):
    sync_scope: str = varchar(80)


class ReplicaUser(ReplicaTable, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    name: str = varchar(60)


class ReplicaTicket(ReplicaTable, table=True):
    __tablename__ = "tickets"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    user_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    train_number: int = Field(sa_type=Integer, index=True)
    wagon_number: int = Field(sa_type=Integer)
    place_number: int = Field(sa_type=Integer)
    date: dt.datetime = Field(sa_type=UtcDateTime)
    station_id: str = varchar(60)
    destination_id: str = varchar(60)
    start_date: dt.datetime = Field(sa_type=UtcDateTime)
    code: str = varchar(128)
    used: bool = Field(sa_type=Boolean)


class ReplicaTicketToken(ReplicaTable, table=True):
    """A ticket's signed token (the QR's content): what a passenger recognised by face is checked with, by
    the very verifier a shown code goes through."""

    __tablename__ = "ticket_tokens"

    ticket_id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    token: str = Field(sa_type=Text)
    expires_at: dt.datetime = Field(sa_type=UtcDateTime)


class ReplicaRevocation(ReplicaTable, table=True):
    __tablename__ = "ticket_revocations"

    ticket_id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    reason: str = varchar(255)
    revoked_at: dt.datetime = Field(sa_type=UtcDateTime)


class ReplicaEngineer(ReplicaTable, table=True):
    __tablename__ = "engineers"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    login: str = varchar(60)
    password: str = varchar(60)  # the bcrypt hash
    privileges: int = Field(sa_type=Integer)


class ReplicaAuthCard(ReplicaTable, table=True):
    __tablename__ = "auth_cards"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    engineer_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    key: str = varchar(256)  # a keyed hash of the card UID, never the UID


class ReplicaStore(ReplicaTable, table=True):
    __tablename__ = "stores"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    name: str = varchar(100)
    description: str = varchar(255)
    logo_url: str = varchar(255)
    store_type: str = varchar(20)


class ReplicaStoreItem(ReplicaTable, table=True):
    __tablename__ = "store_items"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    store_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    name: str = varchar(100)
    description: str = varchar(255)
    logo_url: str | None = varchar(255, nullable=True, default=None)
    balance: int | None = Field(default=None, sa_type=Integer, nullable=True)
    price_penny: int = Field(sa_type=Integer)
    category: str | None = varchar(100, nullable=True, default=None)


class ReplicaTrainStore(ReplicaTable, table=True):
    __tablename__ = "train_stores"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    store_id: uuid.UUID = Field(sa_type=Uuid)
    train_number: int = Field(sa_type=Integer)
    train_date: dt.datetime = Field(sa_type=UtcDateTime)


class ReplicaSigningKey(ReplicaTable, table=True):
    """A key the cloud signs tickets with: the robot's trust list."""

    __tablename__ = "signing_keys"

    kid: str = Field(sa_type=String(16), primary_key=True)
    public_key: str = varchar(64)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    retired_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class ReplicaPlace(ReplicaTable):
    """A hotel or an attraction at a destination (the seed's tables): what the robot tells a passenger it
    lets in about where they are going."""

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    name: str = varchar(256)
    description: str | None = varchar(1024, nullable=True, default=None)
    logo_url: str | None = varchar(256, nullable=True, default=None)
    destination_id: str = Field(sa_type=String(256), index=True)


class ReplicaHotel(ReplicaPlace, table=True):
    __tablename__ = "hotels"


class ReplicaAttraction(ReplicaPlace, table=True):
    __tablename__ = "attractions"


class ReplicaAssignment(ReplicaTable, table=True):
    __tablename__ = "robot_assignments"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    robot_id: uuid.UUID = Field(sa_type=Uuid)
    train_number: int = Field(sa_type=Integer)
    train_date: dt.date = Field(sa_type=Date)


class SyncCursor(RobotTable, table=True):
    """The newest change of a scope this robot has applied (docs/sync.md, "Down-sync")."""

    __tablename__ = "sync_cursors"

    scope: str = Field(sa_type=String(80), primary_key=True)
    change_id: int = Field(sa_type=Integer)


class ReplicaTask(ReplicaTable, table=True):
    """A store task of a purchase this robot made (its `robot:{id}` scope): `is_ready` once the store has
    made the order ready to hand over; `additional_data` as ingest wrote it (`robot_id`, and `conflicts`: the
    stock conflicts the sale met, each `{"kind", "detail"}`)."""

    __tablename__ = "tasks"

    id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    store_id: uuid.UUID = Field(sa_type=Uuid)
    user_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    purchase_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    is_ready: bool = Field(sa_type=Boolean)
    additional_data: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)
