"""Tables of the seed's Base Server database (users, tickets, engineers, robots, ...).

Table and column names, types and lengths follow the seed's diagram
(shared/seed/server-architecture.ru.md, "Base Server / База данных"). The seed leaves nullability
and keys unsaid; the choices are in docs/decisions.md. `alembic_version` belongs to Alembic.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Boolean, Integer, false
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from models.columns import created_at, timestamptz, uuid_pk, uuid_ref, varchar


class BaseServerTable(SQLModel, registry=registry()):
    """Parent of every Base Server table; its `metadata` is that database's schema."""


BASE_METADATA = BaseServerTable.metadata


class User(BaseServerTable, table=True):
    __tablename__ = "users"

    id: uuid.UUID = uuid_pk()
    name: str = varchar(60)
    created_at: dt.datetime = created_at()


class KeycloakUser(BaseServerTable, table=True):
    __tablename__ = "keycloak_users"

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = uuid_ref("users.id")


class Ticket(BaseServerTable, table=True):
    __tablename__ = "tickets"

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = uuid_ref("users.id")
    train_number: int = Field(sa_type=Integer, index=True)
    wagon_number: int = Field(sa_type=Integer)
    place_number: int = Field(sa_type=Integer)
    date: dt.datetime = timestamptz()
    station_id: str = varchar(60)
    destination_id: str = varchar(60)
    start_date: dt.datetime = timestamptz()
    code: str = varchar(128)
    used: bool = Field(default=False, sa_type=Boolean, sa_column_kwargs={"server_default": false()})


class Engineer(BaseServerTable, table=True):
    __tablename__ = "engineers"

    id: uuid.UUID = uuid_pk()
    login: str = varchar(60, unique=True)
    # 60 characters is exactly a bcrypt hash; the password itself is never stored.
    password: str = varchar(60)
    privileges: int = Field(default=0, sa_type=Integer, sa_column_kwargs={"server_default": "0"})
    created_at: dt.datetime = created_at()


class AuthCard(BaseServerTable, table=True):
    __tablename__ = "auth_cards"

    id: uuid.UUID = uuid_pk()
    engineer_id: uuid.UUID = uuid_ref("engineers.id")
    # A keyed hash of the card UID, never the UID itself (shared/notes/serial-facts.md, "Auth cards").
    key: str = varchar(256, unique=True)
    created_at: dt.datetime = created_at()


class Robot(BaseServerTable, table=True):
    __tablename__ = "robots"

    id: uuid.UUID = uuid_pk()
    robot_model_id: str = varchar(60)
    robot_model_name: str = varchar(60)
    # Empty until the robot has generated its key pair and registered the public half.
    public_key: str | None = varchar(500, nullable=True, default=None)
    created_at: dt.datetime = created_at()


class Hotel(BaseServerTable, table=True):
    __tablename__ = "hotels"

    id: uuid.UUID = uuid_pk()
    name: str = varchar(256)
    description: str | None = varchar(1024, nullable=True, default=None)
    logo_url: str | None = varchar(256, nullable=True, default=None)
    destination_id: str = varchar(256)
    created_at: dt.datetime = created_at()


class Attraction(BaseServerTable, table=True):
    __tablename__ = "attractions"

    id: uuid.UUID = uuid_pk()
    name: str = varchar(256)
    description: str | None = varchar(1024, nullable=True, default=None)
    logo_url: str | None = varchar(256, nullable=True, default=None)
    destination_id: str = varchar(256)
    created_at: dt.datetime = created_at()


class TrainStore(BaseServerTable, table=True):
    """Which store serves which train on which date.

    `store_id` names a row of the Store database, so there is no foreign key (as in the seed).
    """

    __tablename__ = "train_stores"

    id: uuid.UUID = uuid_pk()
    store_id: uuid.UUID = uuid_ref()
    train_number: int = Field(sa_type=Integer, index=True)
    train_date: dt.datetime = timestamptz()


class ActiveStore(BaseServerTable, table=True):
    __tablename__ = "active_stores"

    id: uuid.UUID = uuid_pk()
    public_key: str = varchar(500)
    created_at: dt.datetime = created_at()
