"""Every detector and embedder robot.toml and the cloud may name builds from set-up's model directory and
finds the one face in a portrait; a missing model file is refused by name with the command to run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import get_args

import pytest

from models.faces.choice import DETECTOR_FILES, EMBEDDERS, DetectorName, EmbedderName, PipelineChoice
from models.faces.image import decode_image
from models.model_files import ModelFileError, open_pipeline
from tests.support.face_files import MODELS_DIR, face_photo, model_bytes


@pytest.mark.parametrize("embedder", get_args(EmbedderName))
@pytest.mark.parametrize("detector", get_args(DetectorName))
def test_each_choice_builds_and_embeds_a_portrait(detector: DetectorName, embedder: EmbedderName) -> None:
    choice = PipelineChoice(detector=detector, embedder=embedder)
    for name in choice.files():
        model_bytes(name)  # fails naming `make setup` when set-up has not run
    with open_pipeline(MODELS_DIR, choice) as pipeline:
        found = pipeline.faces(decode_image(face_photo("obama.jpg")))
    assert len(found) == 1
    assert found[0].embedding.shape == (128,)


def test_the_names_cover_every_detector_and_embedder_file() -> None:
    assert set(DETECTOR_FILES) == set(get_args(DetectorName))
    assert set(EMBEDDERS) == set(get_args(EmbedderName))


def test_a_missing_model_file_is_named_with_the_command(tmp_path: Path) -> None:
    for name in ("manifest.json", "face_detection_yunet_2023mar_int8bq.onnx"):
        shutil.copy(MODELS_DIR / name, tmp_path / name)
    with pytest.raises(ModelFileError) as caught:
        open_pipeline(tmp_path, PipelineChoice())
    message = str(caught.value)
    assert "sface_2021dec_fp32.onnx" in message
    assert "robot-agent models" in message
