"""`robot-agent keys init|show`: the robot's signing key pair, and the face key made beside it."""

from __future__ import annotations

import argparse
import logging
import shlex

from robot_agent.cli.common import Commands, load

# The program's own name, as these lines always had (and `--log-format json` users may filter on).
log = logging.getLogger("robot_agent")


def register(commands: Commands) -> None:
    keys = commands.add_parser(
        "keys",
        help="the robot's signing key pair",
        description="The robot's Ed25519 key pair; the private key stays in [robot] key_file.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    init = key_commands.add_parser(
        "init",
        help="create the key pair and print the public key",
        description="Create the robot's key pair in [robot] key_file (mode 0600) and print the public key "
        "(PEM) for the cloud's robots.public_key, and the face key that seals enrolled faces in [vision] "
        "face_key_file (32 random bytes, mode 0600); existing keys are kept, never replaced. Works before "
        "the robot is provisioned; prints the next step (`cloud-sync robot add`) on stderr.",
    )
    init.set_defaults(handler=_keys_init)
    show = key_commands.add_parser(
        "show",
        help="print the public key",
        description="Print the public half of the robot's key (PEM).",
    )
    show.set_defaults(handler=_keys_show)


def _keys_init(args: argparse.Namespace) -> int:
    from robot_agent.faces.key import create_face_key
    from robot_agent.identity import create_key_file, load_key_file, public_key_pem

    # Before provisioning: the cloud writes the broker login and trust list only once it knows this key.
    config = load(args, key_may_be_missing=True, provisioned_may_be_missing=True)
    path = config.robot.key_file
    if path.exists():
        key = load_key_file(path)  # a second `keys init` (after `make setup`, say) keeps the identity
        log.info("%s already exists: the robot keeps its key robot=%s", path, config.robot.id)
    else:
        key = create_key_file(path)
        log.info("created the robot's key pair robot=%s file=%s", config.robot.id, path)
    face_key = config.vision.face_key_file
    if create_face_key(face_key):
        log.info(
            "created the face key file=%s: it seals enrolled faces; back it up with the database", face_key
        )
    else:
        log.info("%s already exists: the robot keeps its face key", face_key)
    print(public_key_pem(key), end="")
    # The next step is logged (stderr, a JSON line under --log-format json), so stdout stays the public key.
    show = f'"$(robot-agent --config {shlex.quote(str(args.config))} keys show)"'
    log.info(
        "next, in the cloud, register the robot by its id and public key (`keys show` prints it), then "
        "provision it: cloud-sync robot add %s --model-id MODEL --model-name NAME --public-key %s",
        config.robot.id,
        show,
    )
    return 0


def _keys_show(args: argparse.Namespace) -> int:
    from robot_agent.identity import load_key_file, public_key_pem

    config = load(args, provisioned_may_be_missing=True)
    print(public_key_pem(load_key_file(config.robot.key_file)), end="")
    return 0
