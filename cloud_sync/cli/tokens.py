"""`cloud-sync token`: API bearer tokens."""

from __future__ import annotations

import argparse
import logging
import uuid

from cloud_sync.cli.common import Commands, Parents, with_session
from cloud_sync.db.tables import Role
from cloud_sync.web.auth import create_token, list_tokens, revoke_token

log = logging.getLogger("cloud_sync")


def register(commands: Commands, parents: Parents) -> None:
    db = parents.db
    token = commands.add_parser("token", help="API bearer tokens", description="API bearer tokens.")
    token_commands = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = token_commands.add_parser(
        "create",
        parents=[db],
        help="create a token and print it once",
        description="Create a bearer token and print it; only its hash is stored, so it is shown only once.",
    )
    create.add_argument(
        "--role", required=True, choices=[r.value for r in Role], help="what the token may do"
    )
    create.add_argument("--store-id", type=uuid.UUID, help="the store a store token acts for")
    create.add_argument("--robot-id", type=uuid.UUID, help="the robot a robot token belongs to")
    create.add_argument("--label", help="a note on who holds the token")
    create.set_defaults(handler=_token_create)
    tokens = token_commands.add_parser(
        "list",
        parents=[db],
        help="list the tokens (never the tokens themselves)",
        description="List every bearer token's id, role, store or robot, label and creation time.",
    )
    tokens.set_defaults(handler=_token_list)
    revoke = token_commands.add_parser(
        "revoke",
        parents=[db],
        help="revoke a token by its id",
        description="Delete a token; running services stop accepting it within 5 seconds.",
    )
    revoke.add_argument("token_id", type=uuid.UUID, metavar="ID", help="the id `token list` shows")
    revoke.set_defaults(handler=_token_revoke)


def _token_create(args: argparse.Namespace) -> int:
    role = Role(args.role)
    token = with_session(
        args.db,
        lambda session: create_token(
            session, role, store_id=args.store_id, robot_id=args.robot_id, label=args.label
        ),
    )
    log.info("created a %s token", role.value)
    print(token)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    rows = with_session(args.db, list_tokens)
    print(f"{'id':<36}  {'role':<5}  {'store or robot':<36}  {'created':<25}  label")
    for row in rows:
        owner = str(row.store_id or row.robot_id or "-")
        created = row.created_at.isoformat(timespec="seconds")
        print(f"{row.id!s:<36}  {row.role.value:<5}  {owner:<36}  {created:<25}  {row.label or ''}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    with_session(args.db, lambda session: revoke_token(session, args.token_id))
    log.info("revoked token id=%s", args.token_id)
    return 0
