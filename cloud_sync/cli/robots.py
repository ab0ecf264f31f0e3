"""`cloud-sync robot` and `broker-config`: the fleet's robots and their broker."""

from __future__ import annotations

import argparse
import shlex
import sys
import uuid
from pathlib import Path

from pydantic import ValidationError

from cloud_sync.cli.common import Commands, Parents, with_session
from cloud_sync.db.database import DEFAULT_DB_URL
from cloud_sync.desks.robots import add_robot
from cloud_sync.desks.signing import KeyRing
from cloud_sync.errors import CloudSyncError
from cloud_sync.sync import broker_files, broker_login, provisioning
from models.base_api import RobotCreate


def register(commands: Commands, parents: Parents) -> None:
    db = parents.db
    robot = commands.add_parser("robot", help="the fleet's robots", description="The fleet's robots.")
    robot_commands = robot.add_subparsers(dest="robot_command", metavar="COMMAND", required=True)
    add = robot_commands.add_parser(
        "add",
        parents=[db],
        help="register a robot by the id and public key it has",
        description="Add a robot to the robots table under the id its robot.toml names ([robot] id), with "
        "the public key `robot-agent keys init` made (as POST /base_api/admin/robot with an id does). "
        "Refuses an id the table already has. Then `robot provision` gives it its broker login.",
    )
    add.add_argument("robot_id", type=uuid.UUID, metavar="ROBOT_ID", help="the robot's [robot] id")
    add.add_argument(
        "--public-key",
        required=True,
        metavar="PEM",
        help='its public key as `robot-agent keys show` prints it: --public-key "$(robot-agent keys show)"',
    )
    add.add_argument("--model-id", required=True, metavar="ID", help="robots.robot_model_id, e.g. rb-2")
    add.add_argument("--model-name", required=True, metavar="NAME", help="robots.robot_model_name")
    add.set_defaults(handler=_robot_add)
    provision = robot_commands.add_parser(
        "provision",
        parents=[db, parents.keys_dir],
        help="give a robot its broker password and trust list",
        description="Make a new MQTT password for a robot of the robots table (replacing any old one; only "
        "its hash is stored) and write the robot's files into --out: mqtt-credentials (username:password, "
        "mode 0600), trust.json (the ticket trust list) and card-pepper (mode 0600: the fleet's card "
        "pepper from --keys-dir, made there if new, with which the robot matches engineers' auth cards). The "
        "password is never printed. Run "
        "`cloud-sync broker-config` afterwards and restart the broker so that it knows the new password.",
    )
    provision.add_argument("robot_id", type=uuid.UUID, metavar="ROBOT_ID", help="the robot's id (robots.id)")
    provision.add_argument(
        "--mqtt-url", required=True, metavar="URL", help="the broker the robot connects to: mqtt://HOST:PORT"
    )
    provision.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="where to write the robot's files"
    )
    provision.set_defaults(handler=_robot_provision)

    broker_config = commands.add_parser(
        "broker-config",
        parents=[db],
        help="write Mosquitto's configuration, users and ACLs",
        description="Write mosquitto.conf and dynamic-security.json (the users and ACLs of Mosquitto's "
        "dynamic-security plugin) into --out from the robots' credentials: each robot may publish only under "
        "its own up/ and subscribe only to its own down/ (any other SUBSCRIBE is refused); the ingest user "
        "subscribes to every robot's up/ and publishes every down/. The ingest user's password is made on "
        "the first run (ingest-credentials, mode 0600) and reused afterwards. Run as root where user "
        "mosquitto exists, the broker's files are root:mosquitto 0640, so that `mosquitto -c "
        "DIR/mosquitto.conf` started as root (it switches to user mosquitto) reads them; otherwise they are "
        "0600 and the broker runs as their owner. The plugin reads its file at start only: restart the "
        "broker (SIGHUP is not enough) after a change.",
    )
    broker_config.add_argument("--out", required=True, type=Path, metavar="DIR", help="the broker's folder")
    broker_config.add_argument(
        "--ingest-user",
        default=broker_files.DEFAULT_INGEST_USER,
        metavar="NAME",
        help=f"the broker user of the cloud's ingest (default: {broker_files.DEFAULT_INGEST_USER})",
    )
    default_listen = ":".join(map(str, broker_files.DEFAULT_LISTEN))
    broker_config.add_argument(
        "--listen",
        default=default_listen,
        metavar="HOST:PORT",
        help=f"the broker's listener (default: {default_listen})",
    )
    broker_config.add_argument(
        "--dynsec-plugin",
        type=Path,
        metavar="PATH",
        help="mosquitto_dynamic_security.so on the broker's machine (default: the one installed here)",
    )
    broker_config.set_defaults(handler=_broker_config)


def _db_flag(args: argparse.Namespace) -> str:
    """` --db URL` for a printed next step, when the command ran on another database than the default."""
    return "" if args.db == DEFAULT_DB_URL else f" --db {shlex.quote(args.db)}"


def _robot_add(args: argparse.Namespace) -> int:
    try:
        body = RobotCreate(
            id=args.robot_id,
            robot_model_id=args.model_id,
            robot_model_name=args.model_name,
            public_key=args.public_key.strip() + "\n",
        )
    except ValidationError as err:
        flags = {"robot_model_id": "--model-id", "robot_model_name": "--model-name"}
        problems = [
            "--public-key: not an Ed25519 public key in PEM (as `robot-agent keys show` prints it)"
            if e["loc"] == ("public_key",)
            else f"{flags.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
            for e in err.errors()
        ]
        raise CloudSyncError(f"not a robot: {'; '.join(problems)}") from err
    robot = with_session(args.db, lambda session: add_robot(session, body))
    print(f"robot        {robot.id}  ({robot.robot_model_name}, model {robot.robot_model_id})")
    print("public key   registered: the cloud takes batches signed with it")
    print("next: its broker login and trust list, written where its robot.toml looks for them:")
    print(f"  cloud-sync robot provision {robot.id}{_db_flag(args)} --mqtt-url mqtt://HOST:PORT --out DIR")
    return 0


def _robot_provision(args: argparse.Namespace) -> int:
    url = broker_login.parse_mqtt_url(args.mqtt_url)
    credential = with_session(args.db, lambda session: provisioning.provision_robot(session, args.robot_id))
    written = provisioning.write_robot_files(credential, args.out, KeyRing(args.keys_dir).card_pepper())
    print(f"robot        {written.robot_id}")
    print(f"broker       {url}")
    print(f"username     {written.username}")
    print(f"credentials  {written.credentials_file}  (mode 0600)")
    print(f"trust list   {written.trust_file}  (keys: {written.trusted_keys})")
    print(f"card key     {written.card_key_file}  (mode 0600)")
    print("robot.toml: these lines (relative paths are from its folder; on another machine, copy the files):")
    print(f'  [cloud]    mqtt_url = "{url}"')
    print(f'             credentials_file = "{written.credentials_file.resolve()}"')
    print(f'  [tickets]  trust_file = "{written.trust_file.resolve()}"')
    print(f'  [api]      card_key_file = "{written.card_key_file.resolve()}"')
    print("next: `cloud-sync broker-config --out DIR` gives the broker the new password; (re)start it on")
    print("  DIR/mosquitto.conf (SIGHUP does not reload it); then, on the robot,")
    print("  `robot-agent --config robot.toml run`")
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    listen = broker_files.parse_listen(args.listen)
    credentials = with_session(args.db, provisioning.robot_credentials)
    files = broker_files.write_broker_config(
        credentials, args.out, ingest_user=args.ingest_user, listen=listen, plugin=args.dynsec_plugin
    )
    print(f"config       {files.config}")
    print(f"users, ACLs  {files.security}  ({files.robots} robots and {files.ingest_user})")
    print(f"ingest user  {files.ingest_credentials}")
    print("restart the broker for a change to take effect (SIGHUP does not reload the users)")
    if files.unreachable is not None:
        print(
            f"cloud-sync: warning: user {broker_files.BROKER_ACCOUNT} cannot enter {files.unreachable}: "
            f"a broker started as root switches to that user and will not open {files.config.parent}'s "
            "files; use a folder it can reach",
            file=sys.stderr,
        )
    return 0
