"""The cloud's own tables, beside the seed's: API tokens, ticket-signing keys, issued tokens, revocations,
robot assignments, the fleet's sync (applied events, dead letters, conflicts, the change log, robots'
broker credentials and sync state), and the Face Server's enrolled faces and their embeddings. Foreign keys
into the seed's tables point at those tables' columns directly."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Double,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from models.base_server import BASE_METADATA
from models.columns import UtcDateTime, created_at, timestamptz, uuid_pk, varchar
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


class SyncAppliedEvent(CloudTable, table=True):
    """An event ingest has applied, written in the same transaction as the event's effects, so that a batch
    delivered again (after a lost ack) is recognised and changes nothing."""

    __tablename__ = "sync_applied_events"

    event_id: uuid.UUID = Field(sa_type=Uuid, primary_key=True)
    robot_id: uuid.UUID = Field(sa_column=_ref("robots", nullable=False))
    seq: int = Field(sa_type=BigInteger)
    batch_id: uuid.UUID = Field(sa_type=Uuid)
    # What happened, as the robot said it: the fleet's log of purchases, ticket checks, engineer actions.
    type: str = varchar(40)
    data: dict[str, Any] = Field(sa_type=JSON)
    robot_time: dt.datetime = timestamptz()
    applied_at: dt.datetime = created_at()


class SyncDeadLetter(CloudTable, table=True):
    """A message ingest will never apply, kept with its reason so that an engineer can look at it.

    No foreign key: a message naming an unknown robot is dead-lettered too.
    """

    __tablename__ = "sync_dead_letters"

    id: uuid.UUID = uuid_pk()
    robot_id: uuid.UUID | None = Field(default=None, sa_type=Uuid, nullable=True, index=True)
    topic: str = varchar(255)
    reason: str = varchar(255)
    detail: str = Field(sa_type=Text)
    payload: bytes = Field(sa_type=LargeBinary)  # the raw payload, capped by ingest
    received_at: dt.datetime = created_at()


class SyncConflict(CloudTable, table=True):
    """An event that was applied but disagreed with the cloud (a ticket used twice, an oversold item)."""

    __tablename__ = "sync_conflicts"

    id: uuid.UUID = uuid_pk()
    robot_id: uuid.UUID = Field(sa_column=_ref("robots", nullable=False))
    event_id: uuid.UUID = Field(sa_type=Uuid)
    kind: str = varchar(40)  # "ticket_used_twice", "oversold", "unknown_item", ...
    detail: str = Field(sa_type=Text)
    recorded_at: dt.datetime = created_at()


class SyncChange(CloudTable, table=True):
    """One entry of the change log robots sync down from, by `change_id` after their cursor.

    `change_id` must never be handed out twice: on SQLite that takes AUTOINCREMENT, since a plain rowid
    reuses the highest id once that row is deleted (compaction does), and a robot whose cursor is past
    that id would skip the new change. PostgreSQL's identity sequence never goes back.
    """

    __tablename__ = "sync_changes"
    __table_args__ = (
        Index("ix_sync_changes_scope_change_id", "scope", "change_id"),
        {"sqlite_autoincrement": True},
    )

    # SQLite makes only an INTEGER PRIMARY KEY a rowid alias (and AUTOINCREMENT); its INTEGER is 64-bit.
    change_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True),
    )
    scope: str = varchar(80)  # "train:742:2026-11-27", "all", ...
    table_name: str = varchar(64)
    row_key: str = varchar(64)
    op: str = varchar(8)  # "upsert" or "delete"
    value: Any | None = Field(default=None, sa_type=JSON, nullable=True)
    changed_at: dt.datetime = created_at()


class SyncChangeFloor(CloudTable, table=True):
    """How far the change log of a scope has been compacted: a robot whose cursor in the scope is below
    `floor` has missed changes that are gone, and gets a snapshot of the scope instead."""

    __tablename__ = "sync_change_floors"

    scope: str = Field(sa_type=String(80), primary_key=True)
    floor: int = Field(sa_type=BigInteger)


class RobotCredential(CloudTable, table=True):
    """A robot's user on the MQTT broker; only Mosquitto's PBKDF2 hash of the password is kept."""

    __tablename__ = "robot_credentials"

    robot_id: uuid.UUID = Field(sa_column=_ref("robots", nullable=False, primary_key=True))
    username: str = varchar(64, unique=True)
    password_hash: str = varchar(255)  # "$7$101$<salt>$<hash>", as in a Mosquitto password file
    created_at: dt.datetime = created_at()


class SyncRobotState(CloudTable, table=True):
    """Where ingest is with one robot: the highest sequence number applied, and its clock's skew."""

    __tablename__ = "sync_robot_state"

    robot_id: uuid.UUID = Field(sa_column=_ref("robots", nullable=False, primary_key=True))
    last_seq: int = Field(sa_type=BigInteger)
    last_batch_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    clock_skew_ms: int | None = Field(default=None, sa_type=BigInteger, nullable=True)


class SyncSeqRange(CloudTable, table=True):
    """A run of one robot's sequence numbers that reached ingest in batches that verified (applied, already
    applied, or dead-lettered for their contents), `first_seq` to `last_seq` inclusive. Ingest keeps the runs
    merged, so a robot has one row plus one per gap; what lies between them never arrived (docs/sync.md)."""

    __tablename__ = "sync_seq_ranges"

    robot_id: uuid.UUID = Field(sa_column=_ref("robots", nullable=False, primary_key=True))
    first_seq: int = Field(sa_type=BigInteger, primary_key=True)
    last_seq: int = Field(sa_type=BigInteger)


class Face(CloudTable, table=True):
    """A face enrolled from one photo (the photo itself is not kept): whose it is, the detector that found
    it, and the quality gate's measures of it (models/faces/quality.py). Its embeddings, one per embedder,
    are `face_embeddings` rows; deleting the face (or the user) deletes them."""

    __tablename__ = "faces"

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(sa_column=_ref("users", nullable=False))
    detector: str = varchar(40)  # PipelineChoice's name: "yunet", "blazeface_full", ...
    eye_distance: float = Field(sa_type=Double)  # pixels between the eyes' centres, in the photo
    yaw_degrees: float = Field(sa_type=Double)
    roll_degrees: float = Field(sa_type=Double)
    brightness: float = Field(sa_type=Double)  # mean grey (0-255) of the face's inner region
    sharpness: float = Field(sa_type=Double)  # variance of the Laplacian there
    created_at: dt.datetime = created_at()


class FaceEmbedding(CloudTable, table=True):
    """One enrolled face's embedding by one embedder: biometric data, never logged or shown by the API.

    `vector` is the embedding as float32 little-endian bytes (512 for 128 dimensions): exact by
    construction and read back with one `numpy.frombuffer`, where a JSON array of the same floats would be
    ~5x larger, parsed float by float, and exact only if every writer printed enough digits.
    """

    __tablename__ = "face_embeddings"
    __table_args__ = (UniqueConstraint("face_id", "embedder"),)

    id: uuid.UUID = uuid_pk()
    face_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("faces.id", ondelete="CASCADE"), nullable=False)
    )
    # The face's user, copied here (migration 0006): down-sync finds an embedding's scopes (the trains its
    # user holds tickets on) and a snapshot its rows without a join. No foreign key of its own: the face's
    # already takes the row away with the user.
    user_id: uuid.UUID = Field(sa_type=Uuid, index=True)
    embedder: str = varchar(40)  # PipelineChoice's name: "sface", "dlib_resnet_v1"
    vector: bytes = Field(sa_type=LargeBinary)
    created_at: dt.datetime = created_at()
