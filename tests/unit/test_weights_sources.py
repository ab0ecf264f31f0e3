"""The pins: every model file the design names comes from exactly one pinned package or builder, each pin is
a sha256, and nothing with non-commercial terms is taken."""

from __future__ import annotations

import re

from models.faces.manifest import BUILT_FILES, MODEL_FILES
from robot_agent.weights.build import BUILDERS
from robot_agent.weights.sources import MODEL_ARCHIVES, TEST_FACE_ARCHIVES

SHA256 = re.compile(r"^[0-9a-f]{64}$")
FETCHED = [item.name for archive in MODEL_ARCHIVES for item in archive.files]


def test_the_model_files_come_from_the_pins_and_the_builders() -> None:
    built = [builder.output for builder in BUILDERS]
    assert len(set(FETCHED + built)) == len(FETCHED + built)
    assert set(built) <= BUILT_FILES
    assert not set(FETCHED) & BUILT_FILES
    assert set(FETCHED + built) == MODEL_FILES


def test_every_builder_builds_from_a_fetched_file() -> None:
    assert all(builder.source in FETCHED for builder in BUILDERS)


def test_every_archive_and_file_is_pinned_by_sha256_with_a_licence() -> None:
    for archive in (*MODEL_ARCHIVES, *TEST_FACE_ARCHIVES):
        assert SHA256.match(archive.sha256), archive.label
        assert archive.filename.startswith(archive.package.replace("-", "_")), archive.filename
        for item in archive.files:
            assert SHA256.match(item.sha256), item.member
            assert item.licence in {"Apache-2.0", "MIT", "CC0-1.0"}, item.member
            assert item.licence_note, item.member


def test_nothing_with_non_commercial_terms_is_taken() -> None:
    members = [item.member for archive in MODEL_ARCHIVES for item in archive.files]
    assert not [member for member in members if "shape_predictor_68" in member]
