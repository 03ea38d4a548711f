"""A small builder over ``onnx.helper``: unique names, constants, nodes, subgraphs.

Opset 18 (LayerNormalization needs 17, Split with ``num_outputs`` 18) and IR version 8,
the pair onnxruntime has supported since 1.14, so the files load in older runtimes too.
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 8
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
BOOL = TensorProto.BOOL


class Graph:
    """Collects nodes and initializers of one (sub)graph. Subgraphs share the parent's name
    counter, so a Scan body may read the outer graph's initializers by name without clashes."""

    def __init__(self, counter=None, int8: bool = False):
        self.int8 = int8                   # weight matrices as int8 + DequantizeLinear (QDQ)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counter = counter if counter is not None else itertools.count()
        self._consts: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def subgraph(self) -> "Graph":
        return Graph(self._counter, self.int8)

    def weight(self, hint: str, array: np.ndarray, channel_axis: int | None = None) -> str:
        """A float32 initializer (parameters, pre-transposed or reordered for the operator).

        channel_axis: for a weight matrix, the axis of its output channels (rows of torch's W);
        in an int8 graph the matrix is then stored as int8 with one float32 scale per channel
        and read through DequantizeLinear (``int8_weight``)."""
        if self.int8 and channel_axis is not None:
            return self.int8_weight(hint, np.asarray(array, np.float32), channel_axis)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def int8_weight(self, hint: str, a: np.ndarray, axis: int) -> str:
        """DequantizeLinear(q, s, 0) with q int8, s per channel along ``axis`` (standard ONNX
        QDQ, no contrib operator). A (dirs, N, K) operator weight is stored as (dirs·N, K),
        dequantized along its rows and reshaped back. The weights must already lie on the int8
        grid (a model from ``lstmkit.quantize``): then q and s here are the model's own."""
        shape = a.shape
        if a.ndim == 3:
            a, axis = a.reshape(-1, shape[2]), 0
        q, s = int8_grid(a, axis, hint)
        name = self.name(hint)
        self.initializers += [numpy_helper.from_array(q, name),
                              numpy_helper.from_array(s, name + "_scale"),
                              numpy_helper.from_array(np.zeros_like(s, np.int8), name + "_zero")]
        out = self.op("DequantizeLinear", [name, name + "_scale", name + "_zero"], axis=axis)
        return out if len(shape) == 2 else self.op("Reshape", [out, self.const(shape, np.int64)])

    def const(self, value, dtype=np.float32) -> str:
        """A small constant (shapes, axes, scalars), shared between uses."""
        array = np.asarray(value, dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.name("const")
            self.nodes.append(helper.make_node("Constant", [], [name],
                                               value=numpy_helper.from_array(array, name)))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs):
        """Add a node; returns its output name, or a list of names when n_out > 1."""
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def ops(self, op_type: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        """Add a node with given output names (graph outputs, Scan states)."""
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))

    # ---- shorthands ------------------------------------------------------------------
    def matmul_t(self, x: str, w: np.ndarray, hint: str) -> str:
        """x Wᵀ with W stored transposed, as torch's ``x @ w.t()``."""
        return self.op("MatMul", [x, self.weight(hint, w.T, channel_axis=1)])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b])

    def sigmoid(self, a: str) -> str:
        return self.op("Sigmoid", [a])

    def tanh(self, a: str) -> str:
        return self.op("Tanh", [a])

    def unsqueeze(self, a: str, axis: int) -> str:
        return self.op("Unsqueeze", [a, self.const([axis], np.int64)])

    def concat(self, names: list[str], axis: int) -> str:
        return names[0] if len(names) == 1 else self.op("Concat", names, axis=axis)


def int8_grid(a: np.ndarray, axis: int, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """(q int8, s float32 per slice along ``axis``) with a ≈ s q, as ``quant.weights`` makes
    them; ValueError when a is not s q to float32 rounding (not a quantized model's weight)."""
    other = tuple(i for i in range(a.ndim) if i != axis)
    peak = np.abs(a).max(axis=other, keepdims=True)
    s = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(a / s), -127, 127)
    off = float((np.abs(q * s - a) / s).max()) if a.size else 0.0
    if off > 1e-3:
        raise ValueError(f"model: an int8 export writes the weights of lstmkit.quantize(model); {hint} is "
                         f"not on an int8 grid (off by {off:.2f} of a step): quantize the model first")
    return q.astype(np.int8), s.reshape(-1)


def value_info(name: str, elem_type: int, shape: list) -> onnx.ValueInfoProto:
    """A graph input/output; string dims are symbolic (dynamic), None leaves one unknown."""
    return helper.make_tensor_value_info(name, elem_type, shape)


def make_model(graph: Graph, inputs, outputs, doc: str) -> onnx.ModelProto:
    g = helper.make_graph(graph.nodes, "lstmkit", inputs, outputs, graph.initializers)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="lstmkit", doc_string=doc)
    model.ir_version = IR_VERSION
    return model


def make_body(graph: Graph, inputs, outputs) -> onnx.GraphProto:
    return helper.make_graph(graph.nodes, graph.name("body"), inputs, outputs, graph.initializers)
