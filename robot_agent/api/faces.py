"""The robot's enrolled faces as the local API's `FaceActions`: photos through the face pipeline's quality
gate into the matcher (sealed rows and index, as `robot-agent faces enroll` does), a passenger's faces deleted
from the database, the index and its file (as `faces delete`).

The pipeline's models are not safe to run on two threads at once, so enrolments here take turns on a lock of
their own; give this its own pipeline (`open_face_pipeline(config.vision, threads=1)`), not the camera
watcher's. The work runs in a worker thread, off the event loop. Nothing biometric is returned or logged.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from models.faces.pipeline import FacePipeline
from models.faces.quality import Refused
from robot_agent.faces.matcher import Matcher


class MatcherFaces:
    """`FaceActions` over a face pipeline and the robot's matcher."""

    def __init__(self, pipeline: FacePipeline, matcher: Matcher) -> None:
        self._pipeline = pipeline
        self._matcher = matcher
        self._lock = threading.Lock()

    async def enrol(self, user_id: uuid.UUID, images: list[bytes]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._enrol, user_id, images)

    async def delete(self, user_id: uuid.UUID) -> int:
        return len(await asyncio.to_thread(self._matcher.delete_user, user_id))

    def _enrol(self, user_id: uuid.UUID, images: list[bytes]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        vectors = []
        with self._lock:
            for n, data in enumerate(images):
                outcome = self._pipeline.enrol_image(data)
                if isinstance(outcome, Refused):
                    results.append({"image": n, "reason": outcome.reason.value, "detail": outcome.detail})
                else:
                    results.append({"image": n})
                    vectors.append(outcome.embedding)
        rows = iter(self._matcher.enrol(user_id, vectors) if vectors else [])
        for result in results:
            if "reason" not in result:
                result["face_id"] = str(next(rows).id)
        return results
