"""Enrolment's face pipelines, off the event loop: worker threads that each own a pipeline (a pipeline's
native sessions are not safe to share, and one photo blocks for 50-150 ms), fed photos through one queue.

Every photo is judged once by the detector's quality gate (`FacePipeline.enrol_image`) and then embedded by
each configured embedder, so that a robot may run any of them against the same enrolment: photos are not
kept, and a fleet that changed embedder could otherwise only ask every passenger to enrol again. An embedder
is a built-in one or an operator's own (models/faces/custom.py, `cloud-sync serve --face-embedders-file`),
whose faces are kept under its name as the robots that run it keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cloud_sync.desks.photos import PhotoError, check_photo
from models.errors import ModelsError
from models.faces.align import align
from models.faces.choice import (
    EMBEDDERS,
    DetectorName,
    EmbedderChoice,
    EmbedderName,
    PipelineChoice,
    embedder_spec,
)
from models.faces.custom import CustomEmbedder
from models.faces.embed import Embedder
from models.faces.image import decode_image
from models.faces.manifest import ModelName
from models.faces.quality import Quality, Refusal, Refused
from models.faces.vectors import vector_bytes
from models.model_files import load_models, read_custom_embedder

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR: Final = Path("var/models")
ALL_EMBEDDERS: Final[tuple[EmbedderName, ...]] = tuple(EMBEDDERS)
# Requests whose photos are being read or enrolled at once; more wait before their bodies are read, so that
# memory stays bounded (each may hold up to max_files x max_bytes).
MAX_CONCURRENT_REQUESTS: Final = 4


@dataclass(frozen=True)
class FaceSettings:
    """How the cloud enrols faces (`cloud-sync serve --models-dir --face-detector --face-embedder
    --face-embedders-file --face-workers`): the model directory, one detector, the embedders every face is
    kept for (the first one runs inside the pipeline), and the worker threads."""

    models_dir: Path = DEFAULT_MODELS_DIR
    detector: DetectorName = "yunet"
    embedders: tuple[EmbedderChoice, ...] = ALL_EMBEDDERS
    workers: int = 1

    def __post_init__(self) -> None:
        names = self.names()
        if not names or len(set(names)) != len(names):
            raise ValueError(f"embedders must be one or more distinct names, not {names}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")

    def names(self) -> list[str]:
        """The embedders' names, which their faces are kept by."""
        return [embedder_spec(embedder).name for embedder in self.embedders]

    def files(self) -> list[ModelName]:
        """Every file of the model directory enrolment loads (an operator's embedder's file is its own)."""
        first = PipelineChoice(self.detector, self.embedders[0]).files()
        others = (EMBEDDERS[e][1] for e in self.embedders[1:] if not isinstance(e, CustomEmbedder))
        return list(dict.fromkeys([*first, *others]))

    def custom(self) -> list[CustomEmbedder]:
        """The operator's embedders among them."""
        return [embedder for embedder in self.embedders if isinstance(embedder, CustomEmbedder)]


@dataclass(frozen=True, slots=True, eq=False)
class Enrolled:
    """A photo the gate accepted: its face's measures and one vector per embedder (float32 little-endian).

    Biometric data: no `repr` of the vectors, so that a stray log line or traceback cannot print them."""

    detector: str
    quality: Quality
    vectors: Mapping[str, bytes]

    def __repr__(self) -> str:
        return f"Enrolled(detector={self.detector!r}, embedders={sorted(self.vectors)})"


class _Worker:
    """One thread's pipeline and extra embedders."""

    def __init__(
        self, settings: FaceSettings, files: Mapping[ModelName, bytes], custom: Mapping[str, bytes]
    ) -> None:
        self.detector = settings.detector
        first = PipelineChoice(settings.detector, settings.embedders[0])
        self.first = first.spec.name
        self.pipeline = first.build(files.__getitem__, custom.get(self.first))
        self.others: list[tuple[str, Embedder]] = []
        try:
            for embedder in settings.embedders[1:]:
                spec = embedder_spec(embedder)
                model = (
                    custom[spec.name]
                    if isinstance(embedder, CustomEmbedder)
                    else files[EMBEDDERS[embedder][1]]
                )
                self.others.append((spec.name, Embedder(model, spec)))
        except BaseException:
            self.close()
            raise

    def enrol(self, data: bytes) -> Enrolled | Refused:
        try:
            check_photo(data)
        except PhotoError as err:
            return Refused(Refusal.NOT_AN_IMAGE, str(err))
        verdict = self.pipeline.enrol_image(data)
        if isinstance(verdict, Refused):
            return verdict
        vectors: dict[str, bytes] = {self.first: vector_bytes(verdict.embedding)}
        if self.others:
            # Decoding again costs a few ms; the gate and the detection (tens of ms) ran once.
            image = decode_image(data)
            for name, embedder in self.others:
                chip = align(image, verdict.face, embedder.spec.template).image
                vectors[name] = vector_bytes(embedder.embed([chip])[0])
        return Enrolled(self.detector, verdict.quality, vectors)

    def close(self) -> None:
        self.pipeline.close()
        for _, embedder in self.others:
            embedder.close()


def _read_custom(embedders: Sequence[CustomEmbedder]) -> dict[str, bytes]:
    """Each operator's embedder's file, checked against the sha256 its table pins."""
    return {embedder.spec.name: read_custom_embedder(embedder) for embedder in embedders}


@dataclass(eq=False)
class _Job:
    data: bytes
    future: asyncio.Future[Enrolled | Refused]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled with its request
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class EnrolmentWorkers:
    """The threads that enrol photos, started with the app. Without usable models (or without settings) the
    cloud still serves everything else: `unavailable` says why, naming the command that fixes it."""

    def __init__(self, settings: FaceSettings | None) -> None:
        self.settings = settings
        self.unavailable: str | None = (
            "face enrolment is off: this cloud-sync was started without a model directory (--models-dir)"
            if settings is None
            else "face enrolment is starting"
        )
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # The model files' bytes while the threads build their pipelines, then dropped (~65 MB); an
        # operator's embedders' by name.
        self._files: Mapping[ModelName, bytes] | None = None
        self._custom: Mapping[str, bytes] = {}
        self._load_ms = 0
        self._admission = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

    async def start(self) -> None:
        """Load the model files once (checked against the manifest) and build each thread's pipeline; on a
        missing or bad file, stay unavailable, saying why and what to run (`announce` logs it)."""
        settings = self.settings
        if settings is None:
            return
        began = time.perf_counter()
        try:
            self._files = await asyncio.to_thread(load_models, settings.models_dir, *settings.files())
            self._custom = await asyncio.to_thread(_read_custom, settings.custom())
        except ModelsError as err:
            self.unavailable = f"face enrolment is unavailable: {err}"
            return
        loop = asyncio.get_running_loop()
        built: list[asyncio.Future[None]] = [loop.create_future() for _ in range(settings.workers)]
        for index, ready in enumerate(built):
            thread = threading.Thread(
                target=self._run, args=(settings, loop, ready), name=f"face-enrol-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        errors = [r for r in await asyncio.gather(*built, return_exceptions=True) if r is not None]
        self._files, self._custom = None, {}
        if errors:
            await self.stop()
            why = f"the models in {settings.models_dir} cannot be loaded: {errors[0]}"
            self.unavailable = f"face enrolment is unavailable: {why}"
            return
        self.unavailable = None
        self._load_ms = round((time.perf_counter() - began) * 1000)

    def announce(self) -> None:
        """Log how enrolment started: one INFO line, or one WARNING saying why it cannot and what to run.
        `cloud-sync serve` calls it after "serving", with its other start-up warnings."""
        settings = self.settings
        if settings is None:
            return
        if self.unavailable is not None:
            log.warning("%s; everything else is served", self.unavailable)
            return
        log.info(
            "face enrolment ready detector=%s embedders=%s workers=%d ms=%d",
            settings.detector,
            ",".join(settings.names()),
            settings.workers,
            self._load_ms,
        )

    def _run(
        self, settings: FaceSettings, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]
    ) -> None:
        try:
            assert self._files is not None
            worker = _Worker(settings, self._files, self._custom)
        except BaseException as err:
            loop.call_soon_threadsafe(_settle, ready, None, err)
            return
        loop.call_soon_threadsafe(_settle, ready, None, None)
        try:
            while (job := self._jobs.get()) is not None:
                # A photo whose request was cancelled is skipped (done() only reads the future's state).
                if job.future.done():
                    continue
                try:
                    result = worker.enrol(job.data)
                except Exception as err:
                    loop.call_soon_threadsafe(_settle, job.future, None, err)
                else:
                    loop.call_soon_threadsafe(_settle, job.future, result, None)
        finally:
            worker.close()

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one of the few places for a request being read and enrolled (the others wait)."""
        async with self._admission:
            yield

    async def enrol(self, photos: Sequence[bytes]) -> list[Enrolled | Refused]:
        """Each photo's verdict, in order; the photos are spread over the worker threads."""
        if self.unavailable is not None:
            raise RuntimeError(self.unavailable)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Enrolled | Refused]] = []
        for data in photos:
            future: asyncio.Future[Enrolled | Refused] = loop.create_future()
            self._jobs.put(_Job(data, future))
            futures.append(future)
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    async def stop(self) -> None:
        """Let the queued photos finish, then end every thread (closing its pipeline)."""
        for _ in self._threads:
            self._jobs.put(None)
        threads, self._threads = self._threads, []
        for thread in threads:
            await asyncio.to_thread(thread.join)
        if self.settings is not None and self.unavailable is None:
            self.unavailable = "face enrolment has stopped"
