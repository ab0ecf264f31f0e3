"""The embedder's contract on tiny ONNX models built here: channel order, normalisation, layout, batching,
L2-normalised cosine vectors, and models that do not fit their spec refused by name."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from models.faces.align import Template
from models.faces.embed import (
    SFACE,
    Channels,
    Embedder,
    EmbedderSpec,
    Layout,
    Metric,
    distance,
    distances,
)
from models.faces.errors import ModelLoadError

SIZE = 4


def mean_colour_model(layout: Layout, batch: int | str = "n", size: int = SIZE) -> bytes:
    """An 'embedder' whose vector is the input's mean per channel: what the pre-processing fed it."""
    shape = [batch, 3, size, size] if layout is Layout.NCHW else [batch, size, size, 3]
    axes = [2, 3] if layout is Layout.NCHW else [1, 2]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=axes, keepdims=0)],
        "mean_colour",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def spec(**changes: object) -> EmbedderSpec:
    base = EmbedderSpec(
        name="tiny",
        template=Template("tiny", SIZE, {}),
        channels=Channels.RGB,
        layout=Layout.NCHW,
        mean=(0.0, 0.0, 0.0),
        scale=1.0,
        metric=Metric.L2,
        threshold=1.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def chip(b: int, g: int, r: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), (b, g, r), np.uint8)


@pytest.mark.parametrize("layout", list(Layout))
def test_channels_mean_and_scale_reach_the_model_as_the_spec_says(layout: Layout) -> None:
    with Embedder(mean_colour_model(layout), spec(layout=layout, mean=(1.0, 2.0, 3.0), scale=0.5)) as rgb:
        assert rgb.embed([chip(10, 20, 30)]).tolist() == [[(30 - 1) * 0.5, (20 - 2) * 0.5, (10 - 3) * 0.5]]
    with Embedder(mean_colour_model(layout), spec(layout=layout, channels=Channels.BGR)) as bgr:
        assert bgr.embed([chip(10, 20, 30)]).tolist() == [[10, 20, 30]]


def test_chips_go_in_batches_and_come_back_in_order() -> None:
    chips = [chip(n, 2 * n, 3 * n) for n in range(7)]
    with Embedder(mean_colour_model(Layout.NCHW), spec(), batch_size=3) as embedder:
        assert embedder.batch_size == 3
        assert embedder.dimension == 3
        assert embedder.embed(chips).tolist() == [[3 * n, 2 * n, n] for n in range(7)]
        assert embedder.embed([]).shape == (0, 3)


def test_a_model_fixed_at_batch_one_is_fed_one_chip_at_a_time() -> None:
    with Embedder(mean_colour_model(Layout.NCHW, batch=1), spec(), batch_size=8) as embedder:
        assert embedder.batch_size == 1
        assert embedder.embed([chip(1, 1, 1), chip(2, 2, 2)]).tolist() == [[1, 1, 1], [2, 2, 2]]


def test_chips_of_another_size_are_resized_to_the_models() -> None:
    with Embedder(mean_colour_model(Layout.NCHW), spec()) as embedder:
        big = np.full((SIZE * 3, SIZE * 3, 3), (5, 6, 7), np.uint8)
        assert embedder.embed([big]).tolist() == [[7, 6, 5]]


def test_cosine_vectors_come_out_unit_length() -> None:
    with Embedder(mean_colour_model(Layout.NCHW), spec(metric=Metric.COSINE)) as embedder:
        vectors = embedder.embed([chip(3, 4, 0), chip(200, 10, 1)])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[0], [0, 0.8, 0.6])


def test_a_model_that_does_not_fit_its_spec_is_refused_by_name() -> None:
    with pytest.raises(ModelLoadError, match=r"face model tiny: input x has shape \['n', 3, 4, 4\]"):
        Embedder(mean_colour_model(Layout.NCHW), spec(template=Template("t", 8, {})))
    with pytest.raises(ModelLoadError, match="face model tiny: input x has shape"):
        Embedder(mean_colour_model(Layout.NCHW), spec(layout=Layout.NHWC))


def test_bytes_that_are_not_a_model_are_refused_by_name() -> None:
    with pytest.raises(ModelLoadError, match="face model sface: ONNX Runtime cannot load it"):
        Embedder(b"not an onnx model" * 10, SFACE)


def test_distances_are_smaller_when_closer_under_both_metrics() -> None:
    query = np.array([1.0, 0.0])
    gallery = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    assert distances(Metric.L2, query, gallery).tolist() == pytest.approx([0.0, 5**0.5, 4.0])
    assert distances(Metric.COSINE, query, gallery).tolist() == pytest.approx([0.0, 1.0, 2.0])
    assert distance(Metric.COSINE, query, np.array([2.0, 0.0])) == pytest.approx(0.0)
