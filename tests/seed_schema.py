"""The seed's database diagrams, written out by hand from shared/seed/server-architecture.ru.md.

The tests compare the models (and the schemas they create on SQLite and PostgreSQL) against this text,
so it is kept in the seed's own mermaid notation: `type(length) column` per line, and `a --> b: col:id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BASE_DIAGRAM = """
    class active_stores {
        varchar(500) public_key
        timestamp with time zone created_at
        uuid id
    }
    class alembic_version {
        varchar(32) version_num
    }
    class attractions {
        varchar(256) name
        varchar(1024) description
        varchar(256) logo_url
        varchar(256) destination_id
        timestamp with time zone created_at
        uuid id
    }
    class auth_cards {
        uuid engineer_id
        varchar(256) key
        timestamp with time zone created_at
        uuid id
    }
    class engineers {
        varchar(60) login
        varchar(60) password
        integer privileges
        timestamp with time zone created_at
        uuid id
    }
    class hotels {
        varchar(256) name
        varchar(1024) description
        varchar(256) logo_url
        varchar(256) destination_id
        timestamp with time zone created_at
        uuid id
    }
    class keycloak_users {
        uuid user_id
        uuid id
    }
    class robots {
        varchar(60) robot_model_id
        varchar(60) robot_model_name
        varchar(500) public_key
        timestamp with time zone created_at
        uuid id
    }
    class tickets {
        uuid user_id
        integer train_number
        integer wagon_number
        integer place_number
        timestamp with time zone date
        varchar(60) station_id
        varchar(60) destination_id
        timestamp with time zone start_date
        varchar(128) code
        boolean used
        uuid id
    }
    class train_stores {
        uuid store_id
        integer train_number
        timestamp with time zone train_date
        uuid id
    }
    class users {
        varchar(60) name
        timestamp with time zone created_at
        uuid id
    }

    auth_cards --> engineers: engineer_id&#58id
    keycloak_users --> users: user_id&#58id
    tickets --> users: user_id&#58id
"""

STORE_DIAGRAM = """
    class alembic_version {
        varchar(32) version_num
    }
    class purchase_items {
        uuid purchase_id
        uuid store_item_id
        integer count
        uuid id
    }
    class purchases {
        uuid store_id
        uuid user_id
        timestamp with time zone created_at
        uuid id
    }
    class store_items {
        uuid store_id
        varchar(100) name
        varchar(255) description
        varchar(255) logo_url
        integer balance
        integer price_penny
        varchar(100) category
        timestamp with time zone created_at
        uuid id
    }
    class stores {
        varchar(100) name
        varchar(255) description
        varchar(255) logo_url
        store_type_enum store_type
        timestamp with time zone created_at
        uuid id
    }
    class tasks {
        uuid store_id
        uuid user_id
        uuid purchase_id
        boolean is_ready
        json additional_data
        timestamp with time zone created_at
        uuid id
    }

    purchase_items --> purchases: purchase_id&#58id
    purchase_items --> store_items: store_item_id&#58id
    purchases --> stores: store_id&#58id
    store_items --> stores: store_id&#58id
    tasks --> purchases: purchase_id&#58id
    tasks --> stores: store_id&#58id
"""

# The seed's text: "store_type": "SHOP | RESTAURANT".
STORE_TYPE_ENUM = ("SHOP", "RESTAURANT")

# Alembic creates and owns `alembic_version` (varchar(32) version_num) when it migrates; the models
# describe the application's tables only.
ALEMBIC_TABLE = "alembic_version"


@dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    target_table: str
    target_column: str


@dataclass(frozen=True)
class Diagram:
    tables: dict[str, dict[str, str]]  # table -> column -> type as the seed writes it
    foreign_keys: frozenset[ForeignKey]


_CLASS = re.compile(r"class (\w+) \{(.*?)\}", re.S)
_COLUMN = re.compile(r"^\s*(.+?) (\w+)\s*$")
_ARROW = re.compile(r"^\s*(\w+) --> (\w+): (\w+)&#58(\w+)\s*$", re.M)


def parse(diagram: str) -> Diagram:
    tables: dict[str, dict[str, str]] = {}
    for name, body in _CLASS.findall(diagram):
        columns: dict[str, str] = {}
        for line in body.strip().splitlines():
            match = _COLUMN.match(line)
            assert match, f"unparsed line in {name}: {line!r}"
            columns[match.group(2)] = match.group(1)
        tables[name] = columns
    keys = frozenset(ForeignKey(a, col, b, target) for a, b, col, target in _ARROW.findall(diagram))
    return Diagram(tables=tables, foreign_keys=keys)


BASE = parse(BASE_DIAGRAM)
STORE = parse(STORE_DIAGRAM)
