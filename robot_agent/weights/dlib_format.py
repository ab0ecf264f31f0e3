"""A trained dlib DNN read from its serialization in pure Python (bytes in, layers out; no dlib, no I/O).

Written from dlib 20.0.1's own source: `dlib/dnn/core.h` (how a network nests), `dlib/dnn/layers.h`,
`dlib/dnn/input.h` and `dlib/dnn/loss.h` (each layer's fields); the primitives are `dlib_serialize`'s.

A network is dlib's C++ type written out from the outside in: the loss layer (version 1, its details, then
its subnetwork), then each layer around its subnetwork. A layer with details (`add_layer`) writes its version
(1 or 2), its subnetwork, then its details (a string naming the kind and its version, e.g. `con_4`, then the
kind's fields), three bools, the tensors x_grad and cached_output and, at version 2, params_grad. A tag or
skip layer writes only version 1 and its subnetwork: their ids are in the C++ type, not in the file, so
reading needs the network's shape (`Node`s) as dlib does. The innermost layer, around the input layer,
writes version 2 or 3, the input's details, its own details, the three bools, x_grad, cached_output,
grad_final and, at version 3, an integer sample expansion factor. So the file holds the layers' details from
the input up to the output, which is the order `read_network` gives them in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from robot_agent.weights.dlib_serialize import DlibModelError, Floats, Reader

_CONV_MODE = 0  # dlib's layer_mode: CONV_MODE = 0, FC_MODE = 1
_FC_HAS_BIAS = 0  # dlib's fc_bias_mode: FC_HAS_BIAS = 0, FC_NO_BIAS = 1


# ---- what the file holds, per layer (input to output) ----


@dataclass(frozen=True)
class Input:
    """input_rgb_image_sized: a rows x columns RGB image; each value becomes (pixel - mean) / 256."""

    mean_rgb: tuple[float, float, float]
    rows: int
    columns: int


@dataclass(frozen=True)
class Conv:
    filters: Floats  # (out channels, in channels, rows, columns)
    bias: Floats | None  # (out channels,)
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x), both sides
    relu: bool  # a ReLU fused into the layer (con_6's use_relu)


@dataclass(frozen=True)
class Affine:
    """Per channel gamma * x + beta (a batch normalization frozen for inference)."""

    gamma: Floats
    beta: Floats


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    kind: Literal["max", "avg"]
    window: tuple[int, int]  # (rows, columns); (0, 0) is the whole input
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FullyConnected:
    weights: Floats  # (inputs, outputs): output = flattened input @ weights (+ bias)
    bias: Floats | None


@dataclass(frozen=True)
class Tag:
    id: int


@dataclass(frozen=True)
class Skip:
    id: int


@dataclass(frozen=True)
class AddPrev:
    """The output of the layer below plus that at tag `id`, each zero-padded to the larger shape."""

    id: int


@dataclass(frozen=True)
class LossMetric:
    margin: float
    distance_threshold: float


Layer = Conv | Affine | Relu | Pool | FullyConnected | Tag | Skip | AddPrev

LayerKind = Literal["con", "affine", "relu", "max_pool", "avg_pool", "fc", "add_prev", "tag", "skip"]


@dataclass(frozen=True)
class Node:
    """One layer of the network's C++ type: its kind and, for tag, skip and add_prev, the tag's id."""

    kind: LayerKind
    tag: int = 0


@dataclass(frozen=True)
class Network:
    input: Input
    layers: tuple[Layer, ...]  # input to output
    loss: LossMetric


# ---- each layer's details ----


def _finite(what: str, *arrays: Floats | None) -> None:
    if not all(np.isfinite(array).all() for array in arrays if array is not None):
        raise DlibModelError(f"{what}: parameters that are not finite numbers")


def _conv(reader: Reader, version: str) -> Conv:
    params = reader.tensor("con's params").ravel()
    num_filters = reader.count("con's num_filters")
    rows, columns = reader.count("con's nr"), reader.count("con's nc")
    stride = (reader.count("con's stride_y"), reader.count("con's stride_x"))
    padding = (reader.count("con's padding_y"), reader.count("con's padding_x"))
    filters_shape = reader.alias_tensor("con's filters")
    biases_shape = reader.alias_tensor("con's biases")
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        reader.real(f"con's {what}_multiplier")
    use_bias = reader.boolean("con's use_bias") if version in ("con_5", "con_6") else True
    use_relu = reader.boolean("con's use_relu") if version == "con_6" else False
    if (
        filters_shape[0] != num_filters
        or filters_shape[2:] != (rows, columns)
        or 0 in filters_shape
        or 0 in stride
        or not (padding[0] < rows and padding[1] < columns)  # as dlib's con_ asserts
    ):
        raise DlibModelError(
            f"con: filters {filters_shape} do not fit {num_filters} filters of {rows}x{columns}, "
            f"stride {stride}, padding {padding}"
        )
    weights = math.prod(filters_shape)
    bias_size = math.prod(biases_shape) if use_bias else 0
    if bias_size not in (0, num_filters) or params.size != weights + bias_size:
        raise DlibModelError(
            f"con: {params.size} parameters, expected {weights} weights and {bias_size} biases"
        )
    _finite("con", params)
    return Conv(
        filters=params[:weights].reshape(filters_shape),
        bias=params[weights:] if bias_size else None,
        stride=stride,
        padding=padding,
        relu=use_relu,
    )


def _gamma_beta(what: str, params: Floats, gamma_shape: tuple[int, ...]) -> tuple[Floats, Floats]:
    channels = math.prod(gamma_shape)
    if gamma_shape[0] != 1 or gamma_shape[2:] != (1, 1) or params.size != 2 * channels:
        raise DlibModelError(
            f"{what}: gamma {gamma_shape} and {params.size} parameters are not one gamma and beta per channel"
        )
    return params[:channels], params[channels:]


def _batch_norm(reader: Reader) -> Affine:
    """bn_con2 read into an affine layer, as dlib does: gamma / sqrt(var + eps), beta - gamma' * mean."""
    params = reader.tensor("bn's params").ravel()
    gamma_shape = reader.alias_tensor("bn's gamma")
    reader.alias_tensor("bn's beta")
    reader.tensor("bn's means")
    reader.tensor("bn's invstds")
    running_means = reader.tensor("bn's running_means").ravel()
    running_variances = reader.tensor("bn's running_variances").ravel()
    reader.count("bn's num_updates")
    reader.count("bn's running_stats_window_size")
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        reader.real(f"bn's {what}_multiplier")
    eps = reader.real("bn's eps")
    gamma, beta = _gamma_beta("bn", params, gamma_shape)
    if running_means.size != gamma.size or running_variances.size != gamma.size:
        raise DlibModelError(f"bn: running statistics for {running_means.size} channels, gamma {gamma.size}")
    # In float32, as dlib computes it (a float matrix plus a double eps stays float).
    with np.errstate(all="ignore"):
        scale = gamma / np.sqrt(running_variances + np.float32(eps))
        shift = beta - scale * running_means
    _finite("bn", scale, shift)
    return Affine(gamma=scale, beta=shift)


def _affine(reader: Reader, version: str) -> Affine | None:
    params = reader.tensor("affine's params").ravel()
    gamma_shape = reader.alias_tensor("affine's gamma")
    reader.alias_tensor("affine's beta")
    mode = reader.integer("affine's mode")
    disabled = reader.boolean("affine's disabled") if version == "affine_2" else False
    if disabled:
        return None
    if mode != _CONV_MODE:
        raise DlibModelError(f"affine: mode {mode}, only per-channel (CONV_MODE, 0) is supported")
    gamma, beta = _gamma_beta("affine", params, gamma_shape)
    _finite("affine", gamma, beta)
    return Affine(gamma=gamma, beta=beta)


def _relu(reader: Reader, version: str) -> Relu | None:
    disabled = reader.boolean("relu's disabled") if version == "relu_2" else False
    return None if disabled else Relu()


def _pool(reader: Reader, kind: Literal["max", "avg"]) -> Pool:
    what = f"{kind}_pool"
    window = (reader.count(f"{what}'s nr"), reader.count(f"{what}'s nc"))
    stride = (reader.count(f"{what}'s stride_y"), reader.count(f"{what}'s stride_x"))
    padding = (reader.count(f"{what}'s padding_y"), reader.count(f"{what}'s padding_x"))
    if window == (0, 0):  # the whole input (dlib's *_pool_everything), never padded
        fits = not any(padding)
    else:  # dlib asserts 0 <= padding < window
        fits = 0 < window[0] and 0 < window[1] and padding[0] < window[0] and padding[1] < window[1]
    if 0 in stride or not fits:
        raise DlibModelError(
            f"{what}: window {window}, stride {stride} and padding {padding} make no pooling"
        )
    return Pool(kind=kind, window=window, stride=stride, padding=padding)


def _fully_connected(reader: Reader, version: str) -> FullyConnected:
    outputs = reader.count("fc's num_outputs")
    inputs = reader.count("fc's num_inputs")
    params = reader.tensor("fc's params").ravel()
    weights_shape = reader.alias_tensor("fc's weights")
    reader.alias_tensor("fc's biases")
    bias_mode = reader.integer("fc's bias_mode")
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        reader.real(f"fc's {what}_multiplier")
    use_bias = reader.boolean("fc's use_bias") if version == "fc_3" else True
    has_bias = bias_mode == _FC_HAS_BIAS and use_bias
    if weights_shape[:2] != (inputs, outputs) or params.size < inputs * outputs + (
        outputs if has_bias else 0
    ):
        raise DlibModelError(f"fc: {params.size} parameters, weights {weights_shape}, for {inputs}x{outputs}")
    weights = params[: inputs * outputs].reshape(inputs, outputs)
    bias = params[inputs * outputs : inputs * outputs + outputs] if has_bias else None
    _finite("fc", weights, bias)
    return FullyConnected(weights=weights, bias=bias)


# Each details' version string: the kind it is and how to read the rest (None: an identity, left out).
_DETAILS: dict[str, tuple[LayerKind, Callable[[Reader, str], Layer | None]]] = {
    **{version: ("con", _conv) for version in ("con_4", "con_5", "con_6")},
    "bn_con2": ("affine", lambda reader, _version: _batch_norm(reader)),
    **{version: ("affine", _affine) for version in ("affine_", "affine_2")},
    **{version: ("relu", _relu) for version in ("relu_", "relu_2")},
    "max_pool_2": ("max_pool", lambda reader, _version: _pool(reader, "max")),
    "avg_pool_2": ("avg_pool", lambda reader, _version: _pool(reader, "avg")),
    **{version: ("fc", _fully_connected) for version in ("fc_2", "fc_3")},
    "add_prev_": ("add_prev", lambda _reader, _version: None),
}


def _details(reader: Reader, position: int, node: Node) -> Layer | None:
    start = reader.offset
    version = reader.string(f"layer {position}'s kind")
    kind, read = _DETAILS.get(version, (None, None))
    if kind != node.kind or read is None:
        shown = version if version.isprintable() and len(version) < 40 else f"{len(version)} unreadable bytes"
        raise DlibModelError(
            f"layer {position} at byte {start}: expected {node.kind}, the file has {shown!r}"
        )
    if kind == "add_prev":
        return AddPrev(node.tag)
    return read(reader, version)


def _bookkeeping(reader: Reader, position: int) -> None:
    """What add_layer keeps besides the details; for inference only its well-formedness matters."""
    what = f"layer {position}"
    reader.boolean(f"{what}'s this_layer_setup_called")
    reader.boolean(f"{what}'s gradient_input_is_stale")
    reader.boolean(f"{what}'s get_output_and_gradient_input_disabled")
    reader.tensor(f"{what}'s x_grad")
    reader.tensor(f"{what}'s cached_output")


def _input(reader: Reader) -> Input:
    start = reader.offset
    version = reader.string("the input layer's kind")
    if version != "input_rgb_image_sized":
        raise DlibModelError(
            f"input layer at byte {start}: {version[:40]!r}, expected 'input_rgb_image_sized'"
        )
    mean = (reader.real("avg_red"), reader.real("avg_green"), reader.real("avg_blue"))
    rows, columns = reader.count("the input's nr"), reader.count("the input's nc")
    if not rows or not columns:
        raise DlibModelError(f"input layer: an image of {rows}x{columns}")
    return Input(mean_rgb=mean, rows=rows, columns=columns)


def _loss(reader: Reader) -> LossMetric:
    reader.version("the loss layer", range(1, 2))
    start = reader.offset
    version = reader.string("the loss layer's kind")
    if version == "loss_metric_":  # its values were fixed in dlib's code then
        return LossMetric(margin=0.1, distance_threshold=0.75)
    if version != "loss_metric_2":
        raise DlibModelError(f"loss layer at byte {start}: {version[:40]!r}, expected a metric loss")
    return LossMetric(margin=reader.real("margin"), distance_threshold=reader.real("dist_thresh"))


def read_network(data: bytes, nodes: Sequence[Node]) -> Network:
    """The network in `data` (dlib's serialization of loss_metric<nodes...<input_rgb_image_sized>>), its
    layers checked against `nodes` (input to output; the first must have details, as in dlib)."""
    if not nodes or nodes[0].kind in ("tag", "skip"):
        raise ValueError("the network's shape must start with a layer that has details")
    reader = Reader(data)
    loss = _loss(reader)
    versions: list[int] = []
    # Outside in: each layer's version, down to the innermost, which holds the input layer.
    for position in range(len(nodes) - 1, 0, -1):
        kind = nodes[position].kind
        allowed = range(1, 2) if kind in ("tag", "skip") else range(1, 3)
        versions.append(reader.version(f"layer {position} ({kind})", allowed))
    innermost = reader.version("layer 0 (around the input)", range(2, 4))
    image = _input(reader)
    found = [_details(reader, 0, nodes[0])]
    _bookkeeping(reader, 0)
    reader.tensor("layer 0's grad_final")
    if innermost == 3:
        reader.count("layer 0's sample_expansion_factor")
    # Inside out: each layer's details after its subnetwork.
    for position, version in zip(range(1, len(nodes)), reversed(versions), strict=True):
        node = nodes[position]
        if node.kind == "tag":
            found.append(Tag(node.tag))
        elif node.kind == "skip":
            found.append(Skip(node.tag))
        else:
            found.append(_details(reader, position, node))
            _bookkeeping(reader, position)
            if version == 2:
                reader.tensor(f"layer {position}'s params_grad")
    reader.at_end()
    return Network(input=image, layers=tuple(layer for layer in found if layer is not None), loss=loss)
