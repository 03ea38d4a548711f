"""Run an exported graph in ONNX Runtime and the model in PyTorch on the same inputs."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Signature:
    """kind: "rnn" | "cell" | "lm".  inputs / outputs: graph names in order.
    batch_first: layout of input/output/tokens/logits ((B, T, ·) instead of (T, B, ·))."""

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    batch_first: bool


def _rnn(model: nn.Module, sig: Signature) -> nn.Module:
    from ._models import lm_parts
    return lm_parts(model).rnn if sig.kind == "lm" else model


def example_feeds(model: nn.Module, sig: Signature, batch: int, steps: int, seed: int = 0) -> dict:
    """Random inputs for the graph: x ~ N(0, 1), states ~ N(0, 0.5²), lengths in [1, steps]
    with the first sequence full length, tokens uniform over the vocabulary."""
    gen = torch.Generator().manual_seed(seed)
    rnn = _rnn(model, sig)
    feeds = {}
    lead = (batch, steps) if sig.batch_first else (steps, batch)
    if sig.kind == "cell":
        feeds["input"] = torch.randn(batch, rnn.input_size, generator=gen)
    elif sig.kind == "rnn":
        feeds["input"] = torch.randn(*lead, rnn.input_size, generator=gen)
    else:
        from ._models import lm_parts
        feeds["tokens"] = torch.randint(0, lm_parts(model).embedding.num_embeddings, lead, generator=gen)
    sizes = rnn.spec.state_sizes if sig.kind == "cell" else rnn.specs[0].state_sizes
    n = None if sig.kind == "cell" else rnn.num_layers * rnn.num_directions
    for name, size in zip(("h0", "c0"), sizes):
        if name in sig.inputs:
            shape = (batch, size) if n is None else (n, batch, size)
            feeds[name] = 0.5 * torch.randn(*shape, generator=gen)
    if "lengths" in sig.inputs:
        lens = torch.randint(1, steps + 1, (batch,), generator=gen)
        lens[0] = steps
        feeds["lengths"] = lens
    return {k: v.numpy() for k, v in feeds.items()}


@torch.no_grad()
def torch_outputs(model: nn.Module, sig: Signature, feeds: dict) -> dict[str, np.ndarray]:
    """PyTorch's answer to the graph's inputs, by output name."""
    device = next(model.parameters()).device
    t = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
    lengths = t.pop("lengths", None)
    states = tuple(t[n] for n in ("h0", "c0") if n in t) or None
    if states is not None and len(states) == 1:
        states = states[0]
    if sig.kind == "cell":
        out = model(t["input"], states)
        return dict(zip(sig.outputs, (s.cpu().numpy() for s in (out if isinstance(out, tuple) else (out,)))))
    if sig.kind == "rnn":
        y, h_n = model(t["input"], states, lengths=lengths)
    else:
        from ._models import lm_parts
        parts = lm_parts(model)
        y, h_n = parts.rnn(parts.embedding(t["tokens"]), states, lengths=lengths)
        if parts.head is not None:
            y = parts.head(y)
    finals = h_n if isinstance(h_n, tuple) else (h_n,)
    return dict(zip(sig.outputs, (v.cpu().numpy() for v in (y, *finals))))


@functools.lru_cache(maxsize=4)
def _session(path: str, mtime_ns: int, size: int):
    """One ONNX Runtime session per file version: building one costs more than a run.

    ONNX Runtime's default optimizations turn an int8 graph's DequantizeLinear → MatMul into its
    own MatMulNBits at accuracy level 4, which also rounds the activations to int8 (measured:
    1.6e-3 off the graph's own float32 semantics on a projection LSTM); level 1 keeps them
    float32, which is what the graph says and what the int8 model computes."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def onnx_outputs(path, feeds: dict) -> dict[str, np.ndarray]:
    """ONNX Runtime's answer (CPU), by output name."""
    st = os.stat(path)
    sess = _session(str(path), st.st_mtime_ns, st.st_size)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def check_lm_forward(model: nn.Module, seed: int = 0) -> None:
    """The composed graph is only right if model(tokens) is decoder(rnn(embedding(tokens)))."""
    from ._models import lm_parts
    tokens = torch.randint(0, lm_parts(model).embedding.num_embeddings, (5, 3),
                           generator=torch.Generator().manual_seed(seed)).numpy()
    with torch.no_grad():
        want = torch_outputs(model, Signature("lm", ("tokens",), ("logits",), False), {"tokens": tokens})
        out = model(torch.from_numpy(tokens).to(next(model.parameters()).device))
    want = want["logits"]
    out = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(out, torch.Tensor) or out.numel() != want.size or \
            not np.allclose(out.reshape(want.shape).cpu().numpy(), want, atol=1e-6, rtol=0):
        raise ValueError(f"model: {type(model).__name__}.forward(tokens) is not "
                         f"decoder(rnn(embedding(tokens))), so its children cannot be composed into "
                         f"a graph; export its recurrent module instead")


def compare(model: nn.Module, path, sig: Signature, *, batch: int, steps: int, seed: int = 0) -> dict[str, float]:
    """max |ONNX Runtime − PyTorch| per output, on random inputs of the given batch and length."""
    feeds = example_feeds(model, sig, batch, steps, seed)
    ref, got = torch_outputs(model, sig, feeds), onnx_outputs(path, feeds)
    diff = {}
    for name, want in ref.items():
        if got[name].shape != want.shape:
            raise RuntimeError(f"output {name!r}: ONNX Runtime gave shape {got[name].shape}, "
                               f"PyTorch {want.shape}")
        diff[name] = float(np.abs(got[name] - want).max())
    return diff


def compare_streaming(model: nn.Module, path, sig: Signature, *, batch: int, steps: int,
                      seed: int = 0) -> dict[str, float]:
    """max |ONNX Runtime stepped − PyTorch| per output: the graph run ``steps`` times on one
    step each (T = 1), its final states fed back as the next initial states, against PyTorch
    on the whole sequence at once. Needs a graph with state inputs."""
    states = [n for n in ("h0", "c0") if n in sig.inputs]
    if not states or "lengths" in sig.inputs or sig.kind == "cell":
        raise ValueError("export: a streaming check needs a sequence graph with state inputs "
                         "(initial_state=True or streaming=True) and no lengths input")
    feeds = example_feeds(model, sig, batch, steps, seed)
    ref = torch_outputs(model, sig, feeds)
    seq = "input" if sig.kind == "rnn" else "tokens"
    axis = 1 if sig.batch_first else 0
    carried = {n: feeds[n] for n in states}
    ys = []
    for t in range(steps):
        step = {seq: np.take(feeds[seq], [t], axis=axis), **carried}
        got = onnx_outputs(path, step)
        ys.append(got[sig.outputs[0]])
        carried = {n: got[o] for n, o in zip(states, sig.outputs[1:])}
    got = {sig.outputs[0]: np.concatenate(ys, axis=axis), **{o: carried[n] for n, o in zip(states, sig.outputs[1:])}}
    return {name: float(np.abs(got[name] - want).max()) for name, want in ref.items()}
