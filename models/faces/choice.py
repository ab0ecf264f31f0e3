"""Which detector and embedder a program runs, by name, and the model files each needs: what robot.toml's
`[vision]` and the cloud's options choose from. An embedder is a built-in one by name or an operator's own
(models/faces/custom.py), whose file lies outside the model directory. Building a pipeline takes a loader of
model bytes, so this stays pure; `models.model_files.open_pipeline` is the edge that reads the files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from models.faces.custom import CustomEmbedder
from models.faces.detect import BlazeFaceDetector, Detector, YuNetDetector
from models.faces.embed import DLIB_RESNET, SFACE, Embedder, EmbedderSpec
from models.faces.errors import FacesError
from models.faces.manifest import ModelName
from models.faces.pipeline import FacePipeline

DetectorName = Literal["yunet", "blazeface_full", "blazeface_short"]
EmbedderName = Literal["sface", "dlib_resnet_v1"]
# A built-in embedder by name, or an operator's.
EmbedderChoice = EmbedderName | CustomEmbedder
# The embedder a program runs unless told otherwise (robot.toml and cloud-sync may name another).
DEFAULT_EMBEDDER: Final[EmbedderName] = "sface"

DETECTOR_FILES: Final[dict[DetectorName, ModelName]] = {
    "yunet": "face_detection_yunet_2023mar_int8bq.onnx",
    "blazeface_full": "face_detection_full_range_sparse.tflite",
    "blazeface_short": "face_detection_short_range.tflite",
}
EMBEDDERS: Final[dict[EmbedderName, tuple[EmbedderSpec, ModelName]]] = {
    "sface": (SFACE, "sface_2021dec_fp32.onnx"),
    "dlib_resnet_v1": (DLIB_RESNET, "dlib_resnet_v1.onnx"),
}


def embedder_spec(embedder: EmbedderChoice) -> EmbedderSpec:
    """What the embedder expects and how its vectors compare; its `name` is the one its faces are kept by."""
    return embedder.spec if isinstance(embedder, CustomEmbedder) else EMBEDDERS[embedder][0]


def embedder_named(name: str, custom: Mapping[str, CustomEmbedder]) -> EmbedderChoice:
    """The built-in embedder `name`, or the operator's of that name; UnknownEmbedder naming them otherwise."""
    for builtin in EMBEDDERS:
        if builtin == name:
            return builtin
    if name in custom:
        return custom[name]
    raise UnknownEmbedder(name, [*EMBEDDERS, *custom])


class UnknownEmbedder(FacesError):
    """An embedder name neither built in nor configured."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown embedder {name!r}: one of {', '.join(known)}")


@dataclass(frozen=True)
class PipelineChoice:
    """A detector and an embedder by name, and how they run."""

    # YuNet, because a train door shows several people at 0.5-3 m, so small faces and groups decide
    # (bench/bench_face_eval.py, docs/decisions.md §39): in t1.jpg's group of six (counted by hand),
    # scaled to 1280, 960 and 640 px wide (faces 13-52 px between the eyes), YuNet found 6 of 6 at every
    # width, BlazeFace full range 3-4, short range none; over the evaluation's 169 single-face images,
    # YuNet missed none, BlazeFace full 15, short 4. TAR at FAR 0.1% was within 0.01 of BlazeFace full's
    # with either embedder (whose impostor pairs lack the faces it missed). YuNet costs more: 9-17 ms a
    # 640x480 frame here against BlazeFace's 1-4.
    detector: DetectorName = "yunet"
    embedder: EmbedderChoice = DEFAULT_EMBEDDER
    min_confidence: float = 0.6
    threads: int = 1
    upright_passes: int = 3

    @property
    def spec(self) -> EmbedderSpec:
        return embedder_spec(self.embedder)

    def files(self) -> tuple[ModelName, ...]:
        """The model directory's files this choice loads: the detector's, then the embedder's (none for an
        operator's embedder, whose file is its own)."""
        if isinstance(self.embedder, CustomEmbedder):
            return (DETECTOR_FILES[self.detector],)
        return DETECTOR_FILES[self.detector], EMBEDDERS[self.embedder][1]

    def build(self, load: Callable[[ModelName], bytes], custom_model: bytes | None = None) -> FacePipeline:
        """A pipeline from the model bytes `load` gives for each of `files()`, and, for an operator's
        embedder, its file's bytes `custom_model` (models/model_files.py read_custom_embedder checks them)."""
        detector_file = DETECTOR_FILES[self.detector]
        detector: Detector
        if self.detector == "yunet":
            detector = YuNetDetector(load(detector_file), min_confidence=self.min_confidence)
        else:
            detector = BlazeFaceDetector(load(detector_file), min_confidence=self.min_confidence)
        try:
            embedder = Embedder(self._embedder_model(load, custom_model), self.spec, threads=self.threads)
        except BaseException:
            detector.close()
            raise
        return FacePipeline(detector, embedder, upright_passes=self.upright_passes)

    def _embedder_model(self, load: Callable[[ModelName], bytes], custom_model: bytes | None) -> bytes:
        if not isinstance(self.embedder, CustomEmbedder):
            return load(EMBEDDERS[self.embedder][1])
        if custom_model is None:
            raise ValueError(f"the bytes of {self.embedder.path} are needed to build {self.spec.name}")
        return custom_model
