"""dlib's 128-d face ResNet (`dlib_face_recognition_resnet_model_v1.dat`) converted to ONNX by our own code.

The model `convert` makes, `dlib_resnet_v1.onnx`:
- input `chip`: float32 [batch, 3, 150, 150], aligned face chips as dlib cuts them (`get_face_chip_details`
  geometry: 150 px, padding 0.25), channels first in RGB order, raw pixel values 0..255. dlib's input layer
  (subtract the mean colour read from the file, 122.782/117.001/104.298, then divide by 256) is inside the
  graph, so a caller only reorders and casts: `chip_rgb.transpose(2, 0, 1)[None].astype(np.float32)`.
- output `descriptor`: float32 [batch, 128], the face descriptor exactly as dlib's
  `compute_face_descriptor` gives it for that chip (not normalised; dlib calls two faces the same person
  below a Euclidean distance of 0.6, the loss layer's threshold, kept in the model's metadata as
  `dlib_distance_threshold`).
The batch dimension is symbolic: nothing in the network mixes samples.

The network's shape is that of dlib's `face_recognition_model_v1` (tools/python/src/face_recognition.cpp,
`anet_type`): a 7x7/2 convolution, batch norm frozen as affine, ReLU and 3x3/2 max pooling, then 14
residual blocks of two 3x3 convolutions (32, 64, 128 and 256 filters; each level starts with a stride-2
block whose shortcut is a 2x2/2 average pool, channel counts and sizes matched by zero padding as dlib's
add_prev does), a global average pool and a 256x128 fully connected layer without bias: 29 convolutions.
Every affine layer that follows a convolution is folded into it (weights times gamma, bias times gamma plus
beta), so the graph is Conv, Relu, pooling, Pad, Add and one Gemm. The output is deterministic: the same
file gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from models.faces.manifest import ModelName
from robot_agent.weights.dlib_format import (
    AddPrev,
    Affine,
    Conv,
    FullyConnected,
    Layer,
    Network,
    Node,
    Pool,
    Relu,
    Skip,
    Tag,
    read_network,
)
from robot_agent.weights.dlib_serialize import DlibModelError

# Bump when `convert` changes what it writes: the manifest records it, and another version rebuilds the file.
VERSION = "1"
SOURCE: Final[ModelName] = "dlib_face_recognition_resnet_model_v1.dat"
OUTPUT: Final[ModelName] = "dlib_resnet_v1.onnx"
INPUT_NAME = "chip"
OUTPUT_NAME = "descriptor"
BATCH = "batch"
OPSET = 17
IR_VERSION = 8  # the IR that came with opset 17: any ONNX Runtime since 1.13 loads it
PRODUCER = "railbot robot-agent models build"


# ---- the network's C++ type, input to output, as dlib's aliases build it ----


def _block() -> list[Node]:
    # block<N,BN,stride> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [Node("con"), Node("affine"), Node("relu"), Node("con"), Node("affine")]


def _ares() -> list[Node]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [Node("tag", 1), *_block(), Node("add_prev", 1), Node("relu")]


def _ares_down() -> list[Node]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [
        Node("tag", 1),
        *_block(),
        Node("tag", 2),
        Node("skip", 1),
        Node("avg_pool"),
        Node("add_prev", 2),
        Node("relu"),
    ]


FACE_RESNET: tuple[Node, ...] = (
    Node("con"),  # con<32,7,7,2,2,input_rgb_image_sized<150>>
    Node("affine"),
    Node("relu"),
    Node("max_pool"),  # max_pool<3,3,2,2>
    *(_ares() * 3),  # alevel4: 32 filters
    *_ares_down(),  # alevel3: 64
    *(_ares() * 3),
    *_ares_down(),  # alevel2: 128
    *(_ares() * 2),
    *_ares_down(),  # alevel1: 256
    *(_ares() * 2),
    *_ares_down(),  # alevel0: 256
    Node("avg_pool"),  # avg_pool_everything
    Node("fc"),  # fc_no_bias<128>
)


# ---- folding and the graph ----


def fold_affines(layers: Sequence[Layer]) -> list[Layer]:
    """The layers with each affine that directly follows a convolution (with no fused ReLU) folded into it."""
    folded: list[Layer] = []
    for layer in layers:
        previous = folded[-1] if folded else None
        if isinstance(layer, Affine) and isinstance(previous, Conv) and not previous.relu:
            gamma = layer.gamma.astype(np.float32)
            bias = previous.bias if previous.bias is not None else np.zeros_like(gamma)
            with np.errstate(over="ignore"):  # a product out of float32's range is refused as not finite
                folded[-1] = replace(
                    previous,
                    filters=previous.filters * gamma[:, None, None, None],
                    bias=bias * gamma + layer.beta,
                )
        else:
            folded.append(layer)
    return folded


Shape = tuple[int, ...]  # one sample's shape: (channels, rows, columns), or (features,) after a fc


@dataclass
class _Graph:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[TensorProto] = field(default_factory=list)

    def constant(self, name: str, value: NDArray[Any]) -> str:
        if not np.isfinite(value).all():
            raise DlibModelError(f"{name}: values that are not finite numbers")
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attributes))
        return name


def _spatial(size: int, window: int, stride: int, padding: int, what: str) -> int:
    span = size + 2 * padding - window
    if span < 0:
        raise DlibModelError(f"{what}: a window of {window} does not fit {size} (padding {padding})")
    return 1 + span // stride


def _conv(graph: _Graph, value: str, shape: Shape, conv: Conv, index: int) -> tuple[str, Shape]:
    out_channels, in_channels, rows, columns = conv.filters.shape
    if len(shape) != 3 or shape[0] != in_channels:
        raise DlibModelError(f"layer {index} (con): filters for {in_channels} channels, the input is {shape}")
    inputs = [value, graph.constant(f"conv{index}.weight", conv.filters)]
    if conv.bias is not None:
        inputs.append(graph.constant(f"conv{index}.bias", conv.bias))
    (py, px), (sy, sx) = conv.padding, conv.stride
    value = graph.node(
        "Conv", inputs, f"conv{index}", kernel_shape=[rows, columns], strides=[sy, sx], pads=[py, px, py, px]
    )
    shape = (
        out_channels,
        _spatial(shape[1], rows, sy, py, f"layer {index} (con)"),
        _spatial(shape[2], columns, sx, px, f"layer {index} (con)"),
    )
    if conv.relu:
        value = graph.node("Relu", [value], f"conv{index}.relu")
    return value, shape


def _affine(graph: _Graph, value: str, shape: Shape, affine: Affine, index: int) -> str:
    if len(shape) != 3 or shape[0] != affine.gamma.size:
        raise DlibModelError(f"layer {index} (affine): {affine.gamma.size} channels, the input is {shape}")
    gamma = graph.constant(f"affine{index}.gamma", affine.gamma.reshape(1, -1, 1, 1))
    beta = graph.constant(f"affine{index}.beta", affine.beta.reshape(1, -1, 1, 1))
    return graph.node(
        "Add", [graph.node("Mul", [value, gamma], f"affine{index}.mul"), beta], f"affine{index}"
    )


def _pool(graph: _Graph, value: str, shape: Shape, pool: Pool, index: int) -> tuple[str, Shape]:
    op = "MaxPool" if pool.kind == "max" else "AveragePool"
    if len(shape) != 3:
        raise DlibModelError(f"layer {index} ({pool.kind}_pool): the input is {shape}")
    if pool.window == (0, 0):
        return graph.node(f"Global{op}", [value], f"pool{index}"), (shape[0], 1, 1)
    (wy, wx), (sy, sx), (py, px) = pool.window, pool.stride, pool.padding
    what = f"layer {index} ({pool.kind}_pool)"
    # dlib clips windows at the padded border: ONNX's max ignores padding and its average leaves it out.
    value = graph.node(
        op, [value], f"pool{index}", kernel_shape=[wy, wx], strides=[sy, sx], pads=[py, px, py, px]
    )
    return value, (shape[0], _spatial(shape[1], wy, sy, py, what), _spatial(shape[2], wx, sx, px, what))


def _fully_connected(
    graph: _Graph, value: str, shape: Shape, fc: FullyConnected, index: int
) -> tuple[str, Shape]:
    inputs, outputs = fc.weights.shape
    if math.prod(shape) != inputs:
        raise DlibModelError(f"layer {index} (fc): {inputs} inputs, the input is {shape}")
    flat = graph.node("Flatten", [value], f"fc{index}.flatten", axis=1)
    operands = [flat, graph.constant(f"fc{index}.weight", fc.weights)]
    if fc.bias is not None:
        operands.append(graph.constant(f"fc{index}.bias", fc.bias))
    return graph.node("Gemm", operands, f"fc{index}"), (outputs,)


def _padded(graph: _Graph, value: str, shape: Shape, target: Shape, name: str) -> str:
    """`value` zero-padded at the end of each axis to `target`, as dlib's tt::add reads missing elements."""
    if shape == target:
        return value
    pads = [0] * (len(shape) + 1) + [0] + [end - size for size, end in zip(shape, target, strict=True)]
    return graph.node("Pad", [value, graph.constant(f"{name}.pads", np.array(pads, dtype=np.int64))], name)


def _add_prev(
    graph: _Graph, value: str, shape: Shape, tagged: tuple[str, Shape], index: int
) -> tuple[str, Shape]:
    other, other_shape = tagged
    if len(shape) != len(other_shape):
        raise DlibModelError(f"layer {index} (add_prev): cannot add {other_shape} to {shape}")
    target = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))
    left = _padded(graph, value, shape, target, f"add{index}.pad")
    right = _padded(graph, other, other_shape, target, f"add{index}.pad_tag")
    return graph.node("Add", [left, right], f"add{index}"), target


def build_model(network: Network) -> onnx.ModelProto:
    """The ONNX model computing `network` on raw 0..255 RGB chips (the input layer included)."""
    graph = _Graph()
    image = network.input
    mean = np.array(image.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    centred = graph.node("Sub", [INPUT_NAME, graph.constant("input.mean", mean)], "input.centred")
    value = graph.node(
        "Mul", [centred, graph.constant("input.scale", np.array(1 / 256, dtype=np.float32))], "input.scaled"
    )
    shape: Shape = (3, image.rows, image.columns)
    tags: dict[int, tuple[str, Shape]] = {}
    for index, layer in enumerate(fold_affines(network.layers)):
        if isinstance(layer, Conv):
            value, shape = _conv(graph, value, shape, layer, index)
        elif isinstance(layer, Affine):
            value = _affine(graph, value, shape, layer, index)
        elif isinstance(layer, Relu):
            value = graph.node("Relu", [value], f"relu{index}")
        elif isinstance(layer, Pool):
            value, shape = _pool(graph, value, shape, layer, index)
        elif isinstance(layer, FullyConnected):
            value, shape = _fully_connected(graph, value, shape, layer, index)
        elif isinstance(layer, Tag):
            tags[layer.id] = (value, shape)
        elif isinstance(layer, Skip | AddPrev):
            if layer.id not in tags:
                raise DlibModelError(f"layer {index}: tag {layer.id} is used before it is set")
            if isinstance(layer, Skip):
                value, shape = tags[layer.id]
            else:
                value, shape = _add_prev(graph, value, shape, tags[layer.id], index)
    if not graph.nodes or graph.nodes[-1].output[0] != value:
        raise DlibModelError("the network's output is not computed by its last layer")
    graph.nodes[-1].output[0] = OUTPUT_NAME
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "dlib_face_recognition_resnet_model_v1",
            [
                helper.make_tensor_value_info(
                    INPUT_NAME, TensorProto.FLOAT, [BATCH, 3, image.rows, image.columns]
                )
            ],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH, *shape])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=VERSION,
    )
    helper.set_model_props(model, {"dlib_distance_threshold": repr(network.loss.distance_threshold)})
    return model


def convert(dat: bytes) -> bytes:
    """dlib's face ResNet file (`dlib_face_recognition_resnet_model_v1.dat`) as ONNX model bytes."""
    try:
        model = build_model(read_network(dat, FACE_RESNET))
    except DlibModelError as err:
        raise DlibModelError(f"{SOURCE} cannot be converted: {err}") from err
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise DlibModelError(f"{OUTPUT} as built is not a valid ONNX model: {err}") from err
    data: bytes = model.SerializeToString()
    return data


def check(model: bytes) -> None:
    """The built model runs in ONNX Runtime and gives one finite 128-d descriptor per chip."""
    import onnxruntime  # type: ignore[import-untyped]  # no py.typed; only the check runs it

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        chips = np.random.default_rng(0).uniform(0, 255, (2, 3, 150, 150)).astype(np.float32)
        (descriptors,) = session.run([OUTPUT_NAME], {INPUT_NAME: chips})
    except Exception as err:  # onnxruntime raises its own unexported classes
        raise DlibModelError(f"{OUTPUT} as built does not run in ONNX Runtime: {err}") from err
    if descriptors.shape != (2, 128) or not np.isfinite(descriptors).all():
        raise DlibModelError(
            f"{OUTPUT} as built gives {descriptors.shape} outputs, expected (2, 128), finite"
        )
