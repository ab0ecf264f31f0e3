"""An embedding's bytes: float32 little-endian both ways, and bytes that are no embedding refused."""

from __future__ import annotations

import numpy as np
import pytest

from models.faces.vectors import vector_bytes, vector_from_bytes


def test_a_vector_goes_to_little_endian_float32_bytes_and_back_exactly() -> None:
    vector = np.random.default_rng(7).normal(size=128).astype(np.float64)
    data = vector_bytes(vector)
    assert len(data) == 512
    assert data == vector.astype("<f4").tobytes()
    back = vector_from_bytes(data)
    assert back.dtype == np.float32
    assert np.array_equal(back, vector.astype(np.float32))
    back[0] = 0  # a copy: writable, and the bytes are not changed
    assert vector_from_bytes(data)[0] == np.float32(vector[0])


@pytest.mark.parametrize("length", [0, 1, 3, 513])
def test_bytes_that_are_not_whole_float32s_are_refused_by_their_length(length: int) -> None:
    with pytest.raises(ValueError, match=f"^{length} bytes are not an embedding"):
        vector_from_bytes(bytes(length))
