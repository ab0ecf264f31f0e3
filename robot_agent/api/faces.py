"""The robot's enrolled faces as the local API's `FaceActions`: photos through the face pipeline's quality
gate into the matcher (sealed rows and index, as `robot-agent faces enroll` does), frames from the agent's
running camera through the same gate, a passenger's faces deleted from the database, the index and its file
(as `faces delete`).

The pipeline's models are not safe to run on two threads at once, so enrolments here take turns on a lock of
their own; give this its own pipeline (`open_face_pipeline(config.vision, threads=1)`), not the camera
watcher's. The work runs in a worker thread, off the event loop. Nothing biometric is returned or logged.

From the camera (`capture`): a slot of the camera's fan-out for the time of the capture (the newest frame
each time, so frames that come while one is judged are skipped, not queued); each frame judged in turn, an
accepted one enrolled at once (so what was accepted is kept even if the time runs out), until `count` are
enrolled or `timeout_s` has passed. Each frame's verdict goes to `progress` as it is known.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from models.faces.image import BgrImage
from models.faces.pipeline import FacePipeline
from models.faces.quality import Refusal, Refused
from robot_agent.errors import FacesError
from robot_agent.faces.matcher import Matcher
from robot_agent.vision.camera import CameraEnded
from robot_agent.vision.fanout import FrameFanout

# The gate's reasons in an engineer's words, for a frame of the camera (the person is in front of it).
PLAIN: Final = {
    Refusal.NOT_AN_IMAGE: "not an image",
    Refusal.NO_FACE: "no face in view",
    Refusal.SEVERAL_FACES: "more than one face in view",
    Refusal.FACE_TOO_SMALL: "face too small: come closer",
    Refusal.NOT_FRONTAL: "face turned or tilted: look straight at the camera",
    Refusal.TOO_DARK: "too dark: more light on the face",
    Refusal.TOO_BLURRED: "too blurred: hold still",
}
ENROLLED: Final = "enrolled"


class MatcherFaces:
    """`FaceActions` over a face pipeline and the robot's matcher; `frames` is the agent's camera fan-out
    (None: no camera, and enrolment from it answers that it is off)."""

    def __init__(self, pipeline: FacePipeline, matcher: Matcher, frames: FrameFanout | None = None) -> None:
        self._pipeline = pipeline
        self._matcher = matcher
        self._frames = frames
        self._lock = threading.Lock()

    async def enrol(self, user_id: uuid.UUID, images: list[bytes]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._enrol, user_id, images)

    async def delete(self, user_id: uuid.UUID) -> int:
        return len(await asyncio.to_thread(self._matcher.delete_user, user_id))

    async def capture(
        self,
        user_id: uuid.UUID,
        count: int,
        timeout_s: float,
        progress: Callable[[dict[str, Any]], None],
    ) -> list[dict[str, Any]]:
        """Enrol up to `count` faces from the camera's frames within `timeout_s`; per frame judged its
        verdict (`result` in plain words, and the face's id or the gate's `reason`), also given to
        `progress`. FacesError when the camera is off or gives no frame at all."""
        if self._frames is None:
            raise FacesError("the camera is not running on this robot ([camera] with [vision] match_faces)")
        stats = self._frames.camera.stats()
        if stats.ended:
            raise FacesError("the camera's source has ended: restart the agent to read it again")
        if not stats.connected and stats.last_error is not None:
            raise FacesError(f"the camera gives no frames: {stats.last_error}")
        feed = self._frames.subscribe("face capture")
        results: list[dict[str, Any]] = []
        enrolled = 0
        deadline = time.monotonic() + timeout_s
        try:
            while enrolled < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        frame = await feed.next_frame()
                except TimeoutError:
                    break
                except CameraEnded:
                    break
                # Not under the timeout: a frame's work is bounded, and a cancelled wait would leave the
                # thread to enrol a face after the answer was given.
                result = await asyncio.to_thread(self._capture_one, user_id, frame.image)
                result["frame"] = len(results)
                results.append(result)
                if "face_id" in result:
                    enrolled += 1
                progress(result)
        finally:
            self._frames.unsubscribe(feed)
        if not results:
            raise FacesError(f"the camera gave no frame within {timeout_s:g} s: is it connected?")
        return results

    def _capture_one(self, user_id: uuid.UUID, image: BgrImage) -> dict[str, Any]:
        with self._lock:
            outcome = self._pipeline.enrol_frame(image)
        if isinstance(outcome, Refused):
            return {"result": PLAIN[outcome.reason], "reason": outcome.reason.value, "detail": outcome.detail}
        [row] = self._matcher.enrol(user_id, [outcome.embedding])
        return {"result": ENROLLED, "face_id": str(row.id)}

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
