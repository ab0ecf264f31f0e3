"""The matcher: who a face is among the passengers this robot holds faces of, offline.

It keeps one embedder's enrolled faces (the `faces` rows that embedder made) in an in-memory index
(`index.py`), persisted to `[vision] index_file` sealed under the face key. The database is the truth; the
file saves rebuilding at start. Opening the matcher reads the file and checks it against the database:
- missing, unreadable, not an index, for another embedder, corrupt or sealed with another key: rebuilt
  from the database (a warning names why; the database's rows must open with the key, or nothing can be
  matched and FacesError says what to do);
- stale (its faces are not the database's: a face added or deleted while the file was not written, or by
  another process): the faces added since are opened and added, those deleted removed, and the file
  written again. Rows are never updated, so a face id the file and the database share is the same face.

Every change goes through the database first, then the index, then the file; a crash in between leaves a
stale file, which the next opening brings up to date. Thread-safe: one lock around the index and the file
(a search takes well under a millisecond; writing the file takes longer, so keep enrolments off hot paths).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from models.faces.embed import EmbedderSpec
from models.faces.identify import Identification
from robot_agent.errors import FacesError
from robot_agent.faces import records
from robot_agent.faces.index import EXACT_BELOW, Entry, FaceIndex, IndexFormatError
from robot_agent.faces.index_file import IndexFileProblem, read_index_file, write_index_file
from robot_agent.faces.records import FaceRow, OpenedFace
from robot_agent.faces.sealing import FaceKey, SealError

log = logging.getLogger(__name__)


class Matcher:
    """One embedder's enrolled faces, searchable; `threshold` is the distance a match may not exceed (the
    embedder's own unless `max_distance` is given), `min_margin` how far ahead of the next user it must be."""

    def __init__(
        self,
        engine: Engine,
        key: FaceKey,
        spec: EmbedderSpec,
        index_file: Path,
        *,
        max_distance: float | None = None,
        min_margin: float = 0.0,
        exact_below: int = EXACT_BELOW,
    ) -> None:
        self.engine = engine
        self.key = key
        self.spec = spec
        self.index_file = index_file
        self.threshold = spec.threshold if max_distance is None else max_distance
        self.min_margin = min_margin
        self._exact_below = exact_below
        self._lock = threading.RLock()
        self._index = self._open()

    def __len__(self) -> int:
        return len(self._index)

    @property
    def kind(self) -> str:
        """ "exact" or "hnsw": which index the matcher searches now."""
        return self._index.kind

    # -- opening ----------------------------------------------------------------------------------------

    def _empty(self) -> FaceIndex:
        return FaceIndex(self.spec.metric, exact_below=self._exact_below)

    def _open(self) -> FaceIndex:
        with self.engine.connect() as conn:
            wanted = records.face_ids(conn, self.spec.name)
        try:
            payload = read_index_file(self.index_file, self.key, self.spec.name)
            index = FaceIndex.from_bytes(payload, self.spec.metric, exact_below=self._exact_below)
        except IndexFileProblem as problem:
            reason = problem.reason
        except IndexFormatError as err:
            reason = f"not readable as an index ({err})"
        else:
            added, removed = len(wanted - index.face_ids()), len(index.face_ids() - wanted)
            if added or removed:
                log.warning(
                    "face index %s is stale (%d faces added, %d deleted since it was written): updating it "
                    "from the database",
                    self.index_file,
                    added,
                    removed,
                )
                self._catch_up(index, wanted)
            return index
        index = self._empty()
        if not wanted and reason == "missing":
            return index  # nothing enrolled yet: the first enrolment writes the file
        log.warning("face index %s is %s: rebuilding it from the database", self.index_file, reason)
        started = time.perf_counter()
        self._catch_up(index, wanted, save=True)
        log.info(
            "face index %s rebuilt: %d faces (%s) in %.0f ms",
            self.index_file,
            len(index),
            index.kind,
            (time.perf_counter() - started) * 1000,
        )
        return index

    def _catch_up(
        self, index: FaceIndex, wanted: frozenset[uuid.UUID], *, save: bool = False
    ) -> tuple[int, int]:
        """Make `index` hold exactly the faces `wanted` (opening those it lacks); write the file if that
        changed it, or if `save`."""
        missing = wanted - index.face_ids()
        removed = index.remove(list(index.face_ids() - wanted))
        if missing:
            with self.engine.connect() as conn:
                try:
                    opened = list(records.open_faces(conn, self.key, self.spec.name, missing))
                except SealError as err:
                    raise FacesError(
                        f"the face key {self.key.source} does not open {err}: it is not the key the faces "
                        "were sealed with, or the database was altered; put the right key back, or delete "
                        "the faces (`robot-agent faces delete --user-id ID`) and enrol them again"
                    ) from err
            self._add(index, opened)
        if missing or removed or save:
            self._save(index)
        return len(missing), removed

    @staticmethod
    def _add(index: FaceIndex, opened: Sequence[OpenedFace]) -> None:
        if opened:
            index.add(
                [Entry(face.row.id, face.row.user_id) for face in opened],
                np.stack([face.vector for face in opened]),
            )

    def _save(self, index: FaceIndex) -> None:
        write_index_file(self.index_file, self.key, self.spec.name, index.to_bytes())

    # -- changes ----------------------------------------------------------------------------------------

    def enrol(
        self,
        user_id: uuid.UUID,
        vectors: Iterable[NDArray[np.floating[Any]]],
        *,
        source: str = "local",
        at: dt.datetime | None = None,
    ) -> list[FaceRow]:
        """Store embeddings of one user's face (sealed, one row each) and add them to the index."""
        stamp = at or dt.datetime.now(dt.UTC)
        with self._lock:
            with self.engine.begin() as conn:
                opened = [
                    OpenedFace(
                        records.add_face(
                            conn, self.key, user_id, self.spec.name, vector, source=source, at=stamp
                        ),
                        np.asarray(vector, np.float32),
                    )
                    for vector in vectors
                ]
            self._add(self._index, opened)
            self._save(self._index)
        log.info(
            "enrolled %d faces user=%s embedder=%s source=%s", len(opened), user_id, self.spec.name, source
        )
        return [face.row for face in opened]

    def refresh(self) -> tuple[int, int]:
        """Bring the index to the database's faces after someone else changed them (down-sync, another
        process): (faces added, faces removed)."""
        with self._lock:
            with self.engine.connect() as conn:
                wanted = records.face_ids(conn, self.spec.name)
            return self._catch_up(self._index, wanted)

    def delete_user(self, user_id: uuid.UUID) -> list[FaceRow]:
        """Delete every face of a user (every embedder's): rows, index entries, and their bytes in the
        index file and the database's files."""
        with self._lock:
            with self.engine.begin() as conn:
                deleted = records.delete_faces(conn, user_id=user_id)
            if self._index.remove([row.id for row in deleted]):
                self._save(self._index)
        records.forget_deleted(self.engine)
        log.info("deleted %d faces user=%s", len(deleted), user_id)
        return deleted

    # -- matching ---------------------------------------------------------------------------------------

    def identify(self, vector: NDArray[np.floating[Any]]) -> Identification[uuid.UUID]:
        """Who the face with this embedding is: a user only for a match (models.faces.identify)."""
        with self._lock:
            return self._index.identify(vector, self.threshold, self.min_margin)
