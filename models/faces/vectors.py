"""An embedding as bytes, the one way both programs store and send it: float32, little-endian.

The cloud keeps `face_embeddings.vector` so and down-sync carries those bytes (base64 in the change log);
the robot seals the same bytes into its `faces` rows. 512 bytes for 128 dimensions, exact by construction.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def vector_bytes(vector: ArrayLike) -> bytes:
    """`vector` as float32 little-endian bytes."""
    return np.ascontiguousarray(vector, "<f4").tobytes()


def vector_from_bytes(data: bytes) -> NDArray[np.float32]:
    """The vector `vector_bytes` made (a copy, native float32); ValueError if `data` is not whole float32s."""
    if len(data) % 4 or not data:
        raise ValueError(f"{len(data)} bytes are not an embedding of float32s")
    return np.frombuffer(data, "<f4").astype(np.float32)
