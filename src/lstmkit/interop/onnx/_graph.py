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

    def __init__(self, counter=None):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counter = counter if counter is not None else itertools.count()
        self._consts: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def subgraph(self) -> "Graph":
        return Graph(self._counter)

    def weight(self, hint: str, array: np.ndarray) -> str:
        """A float32 initializer (parameters, pre-transposed or reordered for the operator)."""
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

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
        return self.op("MatMul", [x, self.weight(hint, w.T)])

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
