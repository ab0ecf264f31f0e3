"""dlib's serialization written by the tests, from dlib's `serialize.h`, `float_details.h`, `cuda/tensor.h`
and the layers' `serialize` functions, independently of the reader in robot_agent/weights: small networks
made by hand for the parser's and the converter's unit tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from robot_agent.weights.dlib_format import Node

Floats = NDArray[np.float32]


def integer(value: int) -> bytes:
    """dlib's pack_int: a control byte (byte count, 0x80 when negative), then |value| little-endian."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def string(text: str) -> bytes:
    return integer(len(text)) + text.encode("latin-1")


def boolean(value: bool) -> bytes:
    return b"1" if value else b"0"


def real(value: float, digits: int = 53) -> bytes:
    """float_details: mantissa then exponent, trailing zero bytes of the mantissa moved into the exponent."""
    if math.isnan(value):
        return integer(0) + integer(32002)
    if math.isinf(value):
        return integer(0) + integer(32000 if value > 0 else 32001)
    fraction, exponent = math.frexp(value)
    mantissa, exponent = int(fraction * (1 << digits)), exponent - digits
    for _ in range(8):
        if mantissa & 0xFF:
            break
        mantissa >>= 8
        exponent += 8
    return integer(mantissa) + integer(exponent)


def tensor(
    values: NDArray[np.float32] | Sequence[float], shape: tuple[int, int, int, int] | None = None
) -> bytes:
    array = np.asarray(values, dtype="<f4")
    dims = shape if shape is not None else (array.size, 1, 1, 1)
    assert math.prod(dims) == array.size
    return integer(2) + b"".join(integer(d) for d in dims) + array.tobytes()


EMPTY = tensor([], (0, 0, 0, 0))


def alias(shape: tuple[int, int, int, int]) -> bytes:
    return integer(1) + b"".join(integer(d) for d in shape)


_MULTIPLIERS = real(1.0) + real(1.0) + real(1.0) + real(0.0)


def con(filters: Floats, bias: Floats | None, stride: int, padding: int, relu: bool = False) -> bytes:
    out, channels, rows, columns = filters.shape
    params = np.concatenate([filters.ravel(), bias if bias is not None else []])
    return (
        string("con_6")
        + tensor(params)
        + integer(out)
        + integer(rows)
        + integer(columns)
        + integer(stride)
        + integer(stride)
        + integer(padding)
        + integer(padding)
        + alias((out, channels, rows, columns))
        + alias((1, out, 1, 1) if bias is not None else (0, 0, 0, 0))
        + _MULTIPLIERS
        + boolean(bias is not None)
        + boolean(relu)
    )


def bn_con(gamma: Floats, beta: Floats, means: Floats, variances: Floats, eps: float) -> bytes:
    channels = gamma.size
    return (
        string("bn_con2")
        + tensor(np.concatenate([gamma, beta]))
        + alias((1, channels, 1, 1))
        + alias((1, channels, 1, 1))
        + tensor(np.zeros(channels, np.float32))  # the last batch's means and invstds: unused at inference
        + tensor(np.ones(channels, np.float32))
        + tensor(means)
        + tensor(variances)
        + integer(1000)
        + integer(1000)
        + _MULTIPLIERS
        + real(eps)
    )


def affine(gamma: Floats, beta: Floats) -> bytes:
    channels = gamma.size
    return (
        string("affine_2")
        + tensor(np.concatenate([gamma, beta]))
        + alias((1, channels, 1, 1))
        + alias((1, channels, 1, 1))
        + integer(0)  # CONV_MODE
        + boolean(False)
    )


def relu() -> bytes:
    return string("relu_2") + boolean(False)


def pool(kind: str, window: int, stride: int, padding: int = 0) -> bytes:
    return (
        string(f"{kind}_pool_2")
        + integer(window)
        + integer(window)
        + integer(stride)
        + integer(stride)
        + integer(padding)
        + integer(padding)
    )


def fc(weights: Floats, bias: Floats | None) -> bytes:
    inputs, outputs = weights.shape
    params = np.concatenate([weights.ravel(), bias if bias is not None else []])
    return (
        string("fc_3")
        + integer(outputs)
        + integer(inputs)
        + tensor(params)
        + alias((inputs, outputs, 1, 1))
        + alias((1, outputs, 1, 1) if bias is not None else (0, 0, 0, 0))
        + integer(0 if bias is not None else 1)  # FC_HAS_BIAS, FC_NO_BIAS
        + _MULTIPLIERS
        + boolean(True)
    )


def add_prev() -> bytes:
    return string("add_prev_")


def input_rgb(mean: tuple[float, float, float], size: int) -> bytes:
    return (
        string("input_rgb_image_sized") + b"".join(real(m, 24) for m in mean) + integer(size) + integer(size)
    )


def loss_metric(margin: float, threshold: float) -> bytes:
    return string("loss_metric_2") + real(margin, 24) + real(threshold, 24)


_BOOKKEEPING = boolean(True) + boolean(False) + boolean(False) + EMPTY + EMPTY


def network(image: bytes, layers: Sequence[tuple[Node, bytes]], loss: bytes) -> bytes:
    """loss<layers...<image>>: layers input to output, each with its details (b"" for a tag or a skip)."""
    out = integer(1) + loss
    for node, _ in reversed(layers[1:]):
        out += integer(1 if node.kind in ("tag", "skip") else 2)
    out += integer(3) + image + layers[0][1] + _BOOKKEEPING + EMPTY + integer(1)
    for node, details in layers[1:]:
        if node.kind not in ("tag", "skip"):
            out += details + _BOOKKEEPING + EMPTY
    return out


@dataclass(frozen=True)
class TinyNet:
    """A small residual network of every layer kind the face ResNet uses (and a few it does not), with its
    weights, so that a test can compute what dlib would."""

    data: bytes
    nodes: tuple[Node, ...]
    mean: tuple[float, float, float]
    conv1: tuple[Floats, Floats]
    bn: tuple[Floats, Floats, Floats, Floats, float]
    conv2: Floats  # no bias, fused ReLU off
    affine: tuple[Floats, Floats]
    fc: tuple[Floats, Floats]


def tiny_net(seed: int = 0) -> TinyNet:
    """input 6x6 -> con 4x3x3/1 pad 1 + bias -> bn -> relu -> tag1 -> con 6x3x3/2 (2x2) -> affine -> tag2
    -> skip1 -> avg_pool 2/2 (4x3x3) -> add_prev2 (6x3x3, both zero-padded) -> relu -> avg_pool_everything
    -> fc 6->3 + bias."""
    rng = np.random.default_rng(seed)

    def floats(*shape: int, low: float = -1.0, high: float = 1.0) -> Floats:
        return rng.uniform(low, high, shape).astype(np.float32)

    mean = (122.5, 117.25, 104.0)
    conv1 = (floats(4, 3, 3, 3), floats(4))
    bn = (floats(4, low=0.5, high=1.5), floats(4), floats(4), floats(4, low=0.1, high=2.0), 1e-4)
    conv2 = floats(6, 4, 3, 3)
    scale = (floats(6, low=0.5, high=1.5), floats(6))
    dense = (floats(6, 3), floats(3))
    layers = [
        (Node("con"), con(conv1[0], conv1[1], stride=1, padding=1)),
        (Node("affine"), bn_con(*bn)),
        (Node("relu"), relu()),
        (Node("tag", 1), b""),
        (Node("con"), con(conv2, None, stride=2, padding=0)),
        (Node("affine"), affine(*scale)),
        (Node("tag", 2), b""),
        (Node("skip", 1), b""),
        (Node("avg_pool"), pool("avg", 2, 2)),
        (Node("add_prev", 2), add_prev()),
        (Node("relu"), relu()),
        (Node("avg_pool"), pool("avg", 0, 1)),
        (Node("fc"), fc(*dense)),
    ]
    data = network(input_rgb(mean, 6), layers, loss_metric(0.04, 0.6))
    return TinyNet(
        data=data,
        nodes=tuple(node for node, _ in layers),
        mean=mean,
        conv1=conv1,
        bn=bn,
        conv2=conv2,
        affine=scale,
        fc=dense,
    )
