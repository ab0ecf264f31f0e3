"""`robot-agent faces enroll|identify|list|delete`: the robot's enrolled faces from the command line (tests,
the demo, engineers). A thin layer over the matcher (robot_agent/faces/); every refusal is a FacesError, one
line on stderr."""

from __future__ import annotations

import argparse
import json
import logging
import math
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import ModelsError
from robot_agent.cli.common import Commands, load, print_table, progress
from robot_agent.errors import FacesError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from robot_agent.config import RobotConfig, VisionSection
    from robot_agent.faces.records import FaceRow

log = logging.getLogger(__name__)


def register(commands: Commands) -> None:
    faces = commands.add_parser(
        "faces",
        help="the passengers' faces this robot can recognise",
        description="Enrolled faces live in the robot's database, each embedding sealed with [vision] "
        "face_key_file (AES-GCM); the matcher's index of them is [vision] index_file, sealed too. "
        "`enroll` and `identify` need the face models (`robot-agent models fetch`, `models build`) and the "
        "key (`robot-agent keys init`); `list` needs neither, `delete` no models.",
    )
    group = faces.add_subparsers(dest="faces_command", metavar="COMMAND", required=True)
    user = argparse.ArgumentParser(add_help=False)
    user.add_argument("--user-id", type=_user_id, required=True, metavar="ID", help="the passenger's user id")

    enroll = group.add_parser(
        "enroll",
        parents=[user],
        help="enrol photos of one passenger's face",
        description="Run each photo through the quality gate (one face, large, frontal, lit and sharp "
        "enough), store the embedding of each accepted one for the user (sealed), and add it to the index. "
        "One line per photo on stderr, with the reason for each refused one; a JSON summary on stdout. "
        "Exits 0 only if every photo was enrolled (the accepted ones are kept either way).",
    )
    enroll.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="photos (JPEG, PNG, ...)")
    enroll.set_defaults(handler=_enroll)

    identify = group.add_parser(
        "identify",
        help="say who the faces in a photo are, as JSON",
        description="Find every face in the photo and match it against the enrolled faces: its box, the "
        "user id for a match (null otherwise: an unknown face never names the nearest passenger), the "
        "distance to the nearest passenger and the margin to the next other one. Faces too small to "
        "judge (the enrolment gate's minimum) are listed unmatched. Exits 0 once the photo is read.",
    )
    identify.add_argument("image", type=Path, metavar="IMAGE", help="a photo (JPEG, PNG, ...)")
    identify.set_defaults(handler=_identify)

    listing = group.add_parser(
        "list",
        help="list the enrolled faces (never their embeddings)",
        description="List every enrolled face, oldest first: user id, face id, embedder, where it came "
        "from (local or cloud) and when; never an embedding. Needs neither the models nor the key.",
    )
    listing.add_argument("--user-id", type=_user_id, metavar="ID", help="only this passenger's faces")
    listing.add_argument("--json", action="store_true", help="a JSON array of objects")
    listing.set_defaults(handler=_list)

    delete = group.add_parser(
        "delete",
        parents=[user],
        help="delete every face of one passenger",
        description="Delete the passenger's faces (every embedder's) from the database, the index and its "
        "file, leaving no copy in the database's files (overwritten, write-ahead log emptied). Works "
        "without the models; without a usable face key the index file is removed (rebuilt when next "
        "needed). Prints how many faces were deleted.",
    )
    delete.set_defaults(handler=_delete)


def _user_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a user id (a UUID)") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise FacesError(f"cannot read {path}: {err.strerror}") from err


def _load(args: argparse.Namespace) -> RobotConfig:
    """--config, before provisioning too: faces are enrolled on a robot the cloud may not know yet."""
    return load(args, key_may_be_missing=True, provisioned_may_be_missing=True)


def _enroll(args: argparse.Namespace) -> int:
    from models.faces.quality import Refused
    from robot_agent.faces.configured import open_face_pipeline, open_matcher
    from robot_agent.store.database import open_store

    config = _load(args)
    photos = [(path, _read(path)) for path in args.images]  # a typo is named before any work is done
    store = open_store(config.storage.database)
    try:
        matcher = open_matcher(store, config.vision)
        pipeline = open_face_pipeline(config.vision)
        accepted: list[tuple[Path, Any]] = []
        refused: list[dict[str, str]] = []
        with pipeline:
            for n, (path, data) in enumerate(photos, 1):
                result = pipeline.enrol_image(data)
                step = f"[{n}/{len(photos)}] {path}"
                if isinstance(result, Refused):
                    progress(f"{step}: refused: {result.reason.value} ({result.detail})")
                    refused.append(
                        {"image": str(path), "reason": result.reason.value, "detail": result.detail}
                    )
                else:
                    progress(f"{step}: accepted")
                    accepted.append((path, result.embedding))
        rows = matcher.enrol(args.user_id, [vector for _, vector in accepted]) if accepted else []
    finally:
        store.dispose()
    enrolled = [
        {"image": str(path), "face_id": str(row.id)} for (path, _), row in zip(accepted, rows, strict=True)
    ]
    print(json.dumps({"user_id": str(args.user_id), "enrolled": enrolled, "refused": refused}, indent=2))
    if refused:
        kept = f"{len(enrolled)} enrolled for user {args.user_id}"
        raise FacesError(f"{len(refused)} of {len(photos)} images refused ({kept})")
    return 0


def _identify(args: argparse.Namespace) -> int:
    from models.faces.image import decode_image
    from robot_agent.faces.configured import open_face_pipeline, open_matcher
    from robot_agent.store.database import open_store

    config = _load(args)
    data = _read(args.image)
    store = open_store(config.storage.database)
    try:
        matcher = open_matcher(store, config.vision)
        with open_face_pipeline(config.vision) as pipeline:
            try:
                found = pipeline.faces(decode_image(data))
            except ModelsError as err:
                raise FacesError(f"{args.image}: {err}") from err
            smallest = pipeline.limits.min_eye_distance
        faces = []
        for face in found:
            shown: dict[str, Any] = {
                "box": {k: round(getattr(face.face.box, k)) for k in ("x", "y", "w", "h")},
                "score": round(face.face.score, 3),
            }
            if face.face.eye_distance < smallest:
                shown |= {"user_id": None, "verdict": "too_small", "distance": None, "margin": None}
            else:
                who = matcher.identify(face.embedding)
                shown |= {
                    "user_id": None if who.identity is None else str(who.identity),
                    "verdict": who.verdict.value,
                    "distance": _number(who.distance),
                    "margin": _number(who.margin),
                }
            faces.append(shown)
    finally:
        store.dispose()
    print(
        json.dumps(_identified(args.image, config.vision, matcher.threshold, len(matcher), faces), indent=2)
    )
    return 0


def _identified(
    image: Path, vision: VisionSection, threshold: float, enrolled: int, faces: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "image": str(image),
        "embedder": vision.embedder,
        "threshold": round(threshold, 4),
        "enrolled": enrolled,
        "faces": faces,
    }


def _number(value: float) -> float | None:
    """A distance or margin for JSON: null where there is none (infinite)."""
    return None if math.isinf(value) else round(value, 4)


def _list(args: argparse.Namespace) -> int:
    from robot_agent.faces import records
    from robot_agent.store.database import open_store

    config = _load(args)
    store = open_store(config.storage.database)
    try:
        with store.connect() as conn:
            rows = records.list_faces(conn, args.user_id)
    finally:
        store.dispose()
    columns = ["user_id", "face_id", "embedder", "source", "created_at"]
    values = [
        (str(r.user_id), str(r.id), r.embedder, r.source, r.created_at.isoformat(timespec="seconds"))
        for r in rows
    ]
    if args.json:
        print(json.dumps([dict(zip(columns, row, strict=True)) for row in values], indent=2))
    else:
        print_table(columns, list(values))
    return 0


def _delete(args: argparse.Namespace) -> int:
    from robot_agent.faces.configured import open_matcher
    from robot_agent.store.database import open_store

    config = _load(args)
    store = open_store(config.storage.database)
    try:
        try:
            matcher = open_matcher(store, config.vision)
        except FacesError as err:
            deleted = _delete_without_the_index(store, config.vision, args.user_id, err)
        else:
            deleted = matcher.delete_user(args.user_id)
    finally:
        store.dispose()
    print(f"deleted {len(deleted)} face{'' if len(deleted) == 1 else 's'} of user {args.user_id}")
    return 0


def _delete_without_the_index(
    store: Engine, vision: VisionSection, user_id: uuid.UUID, why: FacesError
) -> list[FaceRow]:
    """Deleting needs no key: the rows go, and the index file, which cannot be opened to take the faces
    out, goes too (the matcher rebuilds it from the database once it can)."""
    from robot_agent.faces import records

    with store.begin() as conn:
        deleted = records.delete_faces(conn, user_id=user_id)
    records.forget_deleted(store)
    vision.index_file.unlink(missing_ok=True)
    log.warning("the face index could not be opened (%s): removed %s with the faces", why, vision.index_file)
    return deleted
