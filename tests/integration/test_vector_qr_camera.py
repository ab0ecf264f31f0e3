"""Every ticket test vector's PNG, played by the robot's camera from an image folder and read by its QR
reader, decodes to exactly that vector's token: the path a code takes from the camera to the verifier."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from robot_agent.config import CameraSection
from robot_agent.vision.camera import Camera
from robot_agent.vision.qr import QrReader

VECTORS = Path(__file__).parents[1] / "vectors" / "tickets"


def expected_tokens() -> dict[str, str]:
    tokens = {}
    for path in sorted(VECTORS.glob("*.json")):
        case = json.loads(path.read_text())
        if case["png"] is not None:
            tokens[case["png"]] = case["token"]
    return tokens


async def test_every_vector_png_decodes_through_the_camera_path() -> None:
    expected = expected_tokens()
    assert len(expected) >= 40
    section = CameraSection.model_validate_json(
        json.dumps({"source": {"type": "folder", "path": str(VECTORS), "loop": True}, "fps": 30.0}),
        strict=True,
    )
    reader = QrReader()
    read: dict[str, list[str]] = {}
    with Camera(section) as camera:
        # A looping folder: a frame dropped while the reader was busy comes round again on the next pass.
        async with asyncio.timeout(120):
            while read.keys() != expected.keys():
                frame = await camera.next_frame()
                name = frame.source.rsplit("/", 1)[-1]
                if name not in read:
                    read[name] = await asyncio.to_thread(reader.decode, frame.image)
    wrong = {name: codes for name, codes in read.items() if codes != [expected[name]]}
    assert wrong == {}, f"{len(wrong)} of {len(expected)} vector PNGs did not decode to their token"
