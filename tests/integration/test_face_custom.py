"""An operator's own ONNX embedder, on set-up's real SFace file configured under another name with SFace's
spec values: the robot's pipeline and the cloud's enrolment give exactly the built-in SFace's vectors, kept
under the operator's name."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Final

import numpy as np

from cloud_sync.desks.face_enrolment import Enrolled, EnrolmentWorkers, FaceSettings
from models.faces.choice import PipelineChoice
from models.faces.custom import CustomEmbedder
from models.faces.embed import SFACE
from models.faces.image import decode_image
from models.faces.vectors import vector_bytes
from models.model_files import open_pipeline
from tests.support.face_files import MODELS_DIR, face_photo, model_path

SFACE_FILE: Final = "sface_2021dec_fp32.onnx"


def my_sface() -> CustomEmbedder:
    path = model_path(SFACE_FILE)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return CustomEmbedder(dataclasses.replace(SFACE, name="my_sface"), path, digest, "[embedders.my_sface]")


async def test_a_custom_embedder_gives_the_built_in_ones_vectors_on_the_robot_and_in_the_cloud() -> None:
    photo = face_photo("obama2.jpg")
    image = decode_image(photo)
    with open_pipeline(MODELS_DIR, PipelineChoice()) as built_in:
        [expected] = built_in.faces(image)
    custom = my_sface()
    with open_pipeline(MODELS_DIR, PipelineChoice(embedder=custom)) as pipeline:
        assert pipeline.embedder.spec.name == "my_sface"
        [found] = pipeline.faces(image)
    assert (found.face.box, found.face.landmarks) == (expected.face.box, expected.face.landmarks)
    assert np.array_equal(found.embedding, expected.embedding)

    # The cloud: the custom one runs inside the pipeline, the built-in one beside it.
    workers = EnrolmentWorkers(FaceSettings(MODELS_DIR, embedders=(custom, "sface")))
    await workers.start()
    assert workers.unavailable is None
    try:
        [enrolled] = await workers.enrol([photo])
    finally:
        await workers.stop()
    assert isinstance(enrolled, Enrolled)
    assert sorted(enrolled.vectors) == ["my_sface", "sface"]
    assert enrolled.vectors["my_sface"] == enrolled.vectors["sface"] == vector_bytes(expected.embedding)
