"""The face features as robot.toml's `[vision]` configures them: the pipeline from the model directory, the
face key, and the matcher on the robot's database. Each refuses to start with a FacesError naming what to run
(`robot-agent models fetch` / `models build`, `robot-agent keys init`)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine

from models.errors import ModelsError
from models.faces.pipeline import FacePipeline
from models.model_files import open_pipeline
from robot_agent.config import VisionSection
from robot_agent.errors import FacesError
from robot_agent.faces.key import load_face_key
from robot_agent.faces.matcher import Matcher


def open_face_pipeline(vision: VisionSection, *, threads: int | None = None) -> FacePipeline:
    """The detector and embedder `[vision]` names, from its model directory (one per worker thread);
    `threads` sets ONNX Runtime's intra-op threads (the choice's own, 1, if None)."""
    choice = vision.choice if threads is None else dataclasses.replace(vision.choice, threads=threads)
    try:
        return open_pipeline(vision.models_dir, choice)
    except ModelsError as err:
        raise FacesError(f"face features cannot start: {err}") from err


def open_matcher(engine: Engine, vision: VisionSection) -> Matcher:
    """The enrolled faces of `[vision]`'s embedder in the robot's database, with its face key and index."""
    return Matcher(
        engine,
        load_face_key(vision.face_key_file),
        vision.choice.spec,
        vision.index_file,
        max_distance=vision.match_max_distance,
        min_margin=vision.match_min_margin,
    )
