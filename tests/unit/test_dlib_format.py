"""dlib's serialization read in pure Python: primitives round trip, a hand-built network reads back layer by
layer and converts to an ONNX model that computes what dlib computes, and no truncated or corrupt file gets
past the reader with anything but a DlibModelError."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from robot_agent.errors import RobotAgentError
from robot_agent.weights import dlib_onnx
from robot_agent.weights.dlib_format import (
    AddPrev,
    Affine,
    Conv,
    FullyConnected,
    Node,
    Pool,
    Relu,
    Skip,
    Tag,
    read_network,
)
from robot_agent.weights.dlib_serialize import DlibModelError, Reader
from tests.support import dlib_files
from tests.support.dlib_files import TinyNet, tiny_net

TINY = tiny_net()


@given(st.integers(-(2**63) + 1, 2**64 - 1))
def test_integers_round_trip(value: int) -> None:
    reader = Reader(dlib_files.integer(value))
    assert reader.integer("n") == value
    reader.at_end()


@given(st.floats(allow_nan=False) | st.floats(width=32, allow_nan=False))
def test_reals_round_trip(value: float) -> None:
    assert Reader(dlib_files.real(value)).real("x") == value


def test_special_reals() -> None:
    assert math.isnan(Reader(dlib_files.real(math.nan)).real("x"))
    assert Reader(dlib_files.real(-math.inf)).real("x") == -math.inf


def test_the_bytes_dlib_writes_for_a_float() -> None:
    # loss_metric_2's margin as dlib wrote it in the face ResNet file: 0xa3d70a * 2**-28.
    assert Reader(bytes.fromhex("030ad7a3811c")).real("margin") == pytest.approx(0.04)


@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=300), st.booleans())
def test_strings_and_bools_round_trip(text: str, flag: bool) -> None:
    reader = Reader(dlib_files.string(text) + dlib_files.boolean(flag))
    assert (reader.string("s"), reader.boolean("b")) == (text, flag)
    reader.at_end()


@given(st.lists(st.floats(width=32, allow_nan=False), max_size=24))
def test_tensors_round_trip(values: list[float]) -> None:
    got = Reader(dlib_files.tensor(values, (1, len(values), 1, 1))).tensor("t")
    assert got.shape == (1, len(values), 1, 1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.ravel(), np.array(values, dtype=np.float32))


def test_a_hand_built_network_reads_back_layer_by_layer() -> None:
    network = read_network(TINY.data, TINY.nodes)
    assert network.input.mean_rgb == TINY.mean
    assert (network.input.rows, network.input.columns) == (6, 6)
    assert network.loss.distance_threshold == pytest.approx(0.6)
    kinds = [type(layer) for layer in network.layers]
    assert kinds == [
        Conv,
        Affine,
        Relu,
        Tag,
        Conv,
        Affine,
        Tag,
        Skip,
        Pool,
        AddPrev,
        Relu,
        Pool,
        FullyConnected,
    ]
    conv1, bn, _, tag1, conv2, affine, _, skip, down, add, _, everything, fc = network.layers
    assert isinstance(conv1, Conv)
    assert isinstance(conv2, Conv)
    assert isinstance(fc, FullyConnected)
    np.testing.assert_array_equal(conv1.filters, TINY.conv1[0])
    np.testing.assert_array_equal(conv1.bias, TINY.conv1[1])
    assert (conv1.stride, conv1.padding, conv2.stride, conv2.padding) == ((1, 1), (1, 1), (2, 2), (0, 0))
    assert conv2.bias is None
    gamma, beta, means, variances, eps = TINY.bn
    assert isinstance(bn, Affine)
    scale = gamma / np.sqrt(variances + np.float32(eps))
    np.testing.assert_allclose(bn.gamma, scale, rtol=1e-6)
    np.testing.assert_allclose(bn.beta, beta - scale * means, rtol=1e-6, atol=1e-7)
    assert isinstance(affine, Affine)
    np.testing.assert_array_equal(affine.gamma, TINY.affine[0])
    assert (tag1, skip, add) == (Tag(1), Skip(1), AddPrev(2))
    assert down == Pool("avg", (2, 2), (2, 2), (0, 0))
    assert everything == Pool("avg", (0, 0), (1, 1), (0, 0))
    np.testing.assert_array_equal(fc.weights, TINY.fc[0])
    np.testing.assert_array_equal(fc.bias, TINY.fc[1])


def _correlate(
    x: NDArray[np.float32], filters: NDArray[np.float32], stride: int, pad: int
) -> NDArray[np.float32]:
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out, _, rows, columns = filters.shape
    size = (x.shape[1] - rows) // stride + 1, (x.shape[2] - columns) // stride + 1
    y = np.zeros((out, *size), np.float32)
    for r in range(size[0]):
        for c in range(size[1]):
            window = x[:, r * stride : r * stride + rows, c * stride : c * stride + columns]
            y[:, r, c] = np.einsum("kij,okij->o", window, filters)
    return y


def _padded(x: NDArray[np.float32], shape: tuple[int, ...]) -> NDArray[np.float32]:
    return np.pad(x, [(0, end - size) for size, end in zip(x.shape, shape, strict=True)])


def _as_dlib_computes(net: TinyNet, chip: NDArray[np.float32]) -> NDArray[np.float32]:
    """The tiny network on one chip (3, 6, 6), layer by layer as dlib's layers define it."""
    x = (chip - np.array(net.mean, np.float32)[:, None, None]) / np.float32(256)
    x = _correlate(x, net.conv1[0], 1, 1) + net.conv1[1][:, None, None]
    gamma, beta, means, variances, eps = net.bn
    scale = gamma / np.sqrt(variances + np.float32(eps))
    tag1 = np.maximum(scale[:, None, None] * x + (beta - scale * means)[:, None, None], 0)
    block = _correlate(tag1, net.conv2, 2, 0)
    block = net.affine[0][:, None, None] * block + net.affine[1][:, None, None]
    shortcut = tag1.reshape(4, 3, 2, 3, 2).mean(axis=(2, 4))  # avg_pool 2x2/2 of 6x6
    target = tuple(max(a, b) for a, b in zip(block.shape, shortcut.shape, strict=True))
    summed = np.maximum(_padded(block, target) + _padded(shortcut, target), 0)
    result: NDArray[np.float32] = summed.mean(axis=(1, 2)) @ net.fc[0] + net.fc[1]
    return result


def test_the_converted_network_computes_what_dlib_does() -> None:
    model = dlib_onnx.build_model(read_network(TINY.data, TINY.nodes))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    chips = np.random.default_rng(1).uniform(0, 255, (3, 3, 6, 6)).astype(np.float32)
    (got,) = session.run(["descriptor"], {"chip": chips})
    expected = np.stack([_as_dlib_computes(TINY, chip) for chip in chips])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_affines_fold_into_the_convolution_before_them_only() -> None:
    layers = read_network(TINY.data, TINY.nodes).layers
    folded = dlib_onnx.fold_affines(layers)
    assert [type(layer) for layer in folded].count(Affine) == 0
    assert len(folded) == len(layers) - 2
    relu_first = dlib_onnx.fold_affines([Relu(), layers[1]])
    assert relu_first == [Relu(), layers[1]]


def test_the_face_resnet_shape_has_29_convolutions() -> None:
    kinds = [node.kind for node in dlib_onnx.FACE_RESNET]
    assert kinds.count("con") == 29
    assert (kinds.count("add_prev"), kinds.count("skip")) == (14, 4)
    assert kinds[-2:] == ["avg_pool", "fc"]


def test_every_truncation_is_a_named_error() -> None:
    for end in range(len(TINY.data)):
        with pytest.raises(DlibModelError, match="truncated"):
            read_network(TINY.data[:end], TINY.nodes)


def test_bytes_after_the_network_are_refused() -> None:
    with pytest.raises(DlibModelError, match="3 bytes follow the network"):
        read_network(TINY.data + b"\x00\x00\x00", TINY.nodes)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupt_bytes_never_crash_the_converter(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(TINY.data) - 1), label="position")
    byte = data.draw(st.integers(0, 255), label="byte")
    corrupt = TINY.data[:position] + bytes([byte]) + TINY.data[position + 1 :]
    try:
        read_network(corrupt, TINY.nodes)
    except DlibModelError:
        return
    # Read as a network (a weight or a multiplier changed): building the graph fails only by name too.
    try:
        dlib_onnx.build_model(read_network(corrupt, TINY.nodes))
    except DlibModelError:
        pass


def test_another_network_is_named_where_it_differs() -> None:
    expected = (Node("con"), Node("relu"), *TINY.nodes[2:])
    with pytest.raises(DlibModelError, match=r"layer 1 at byte \d+: expected relu, the file has 'bn_con2'"):
        read_network(TINY.data, expected)


def test_not_a_dlib_network() -> None:
    with pytest.raises(DlibModelError, match="loss layer") as raised:
        dlib_onnx.convert(b"\x01\x01" + dlib_files.string("loss_multiclass_log_"))
    assert isinstance(raised.value, RobotAgentError)
    with pytest.raises(DlibModelError, match="truncated"):
        dlib_onnx.convert(b"")
    with pytest.raises(DlibModelError, match=r"0x50 does not start an integer"):
        dlib_onnx.convert(b"PK\x03\x04 a zip file")


def test_the_build_check_refuses_what_does_not_run() -> None:
    with pytest.raises(DlibModelError, match="does not run in ONNX Runtime"):
        dlib_onnx.check(b"not an ONNX model")
    tiny = dlib_onnx.build_model(read_network(TINY.data, TINY.nodes)).SerializeToString()
    with pytest.raises(DlibModelError, match="does not run in ONNX Runtime"):
        dlib_onnx.check(tiny)  # a 6x6 network given 150x150 chips


def test_a_tensor_with_an_impossible_dimension_is_refused_by_name_even_beside_a_zero_one() -> None:
    # Found by the property above: a zero dimension makes the tensor 0 bytes long, so only the dimension
    # itself can be refused (numpy would say "array is too big").
    data = dlib_files.integer(2) + b"".join(dlib_files.integer(d) for d in (0, 1 << 62, 1 << 62, 3))
    with pytest.raises(DlibModelError, match=r"filters's k at byte \d+ is 4611686018427387904: no tensor"):
        Reader(data).tensor("filters")
