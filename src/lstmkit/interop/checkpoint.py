"""Run directories and checkpoints: safetensors + JSON, never pickle, written atomically.
File formats only: which task a run belongs to and how to load it is ``lstmkit.tasks.runs``.

A run directory holds::

    config.json               what was trained, on what (task, model, training options)
    vocab.json / corpus.json  task files (written by the task)
    model.safetensors         the weights, torch-style names (for generate, evaluate, export)
    checkpoint.safetensors    weights + optimizer state + RNG states + task state (for resume)
    metrics.csv               the curves (and loss.png, drawn from it by ``lstmkit train``)

Every file is written to a temporary file in the same folder, flushed, fsync'ed and
moved over the old one with ``os.replace`` (atomic on POSIX), so a kill at any moment,
``kill -9`` mid-write included, leaves either the old file or the new one, never half
of one. Tensor bytes carry a SHA-256 in the safetensors metadata because safetensors
itself does not checksum data: a flipped byte is caught, not trained on.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

FORMAT = 1                                   # bump when the layout below changes
CONFIG, MODEL, CHECKPOINT = "config.json", "model.safetensors", "checkpoint.safetensors"


class CheckpointError(Exception):
    """A run directory or checkpoint that cannot be used; the message is one line."""


# ---- atomic files ------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)                 # mkstemp's 0600 would hide runs from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:                                     # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:                          # some file systems cannot fsync a folder
        pass


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files left by a writer that was killed mid-write; -> how many."""
    stale = list(Path(folder).glob(".*.tmp"))
    for f in stale:
        f.unlink(missing_ok=True)
    return len(stale)


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


# ---- tensors -----------------------------------------------------------------------
def _digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict[str, Tensor], meta: dict) -> None:
    """Atomically write tensors (CPU copies) and a JSON ``meta`` with a data checksum."""
    # clone: tied weights share storage, which safetensors refuses to write
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    header = {"lstmkit_format": str(FORMAT), "meta": json.dumps(meta, sort_keys=True),
              "sha256": _digest(tensors)}
    atomic_write(path, st_save(tensors, metadata=header))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
    """-> (tensors, meta). Raises CheckpointError (one line) on anything wrong with the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    try:
        tensors = st_load(raw)
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n]).get("__metadata__") or {}
    except (SafetensorError, ValueError, OverflowError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({reason})") from None
    if header.get("lstmkit_format") != str(FORMAT):
        raise CheckpointError(f"{path}: incompatible checkpoint format "
                              f"{header.get('lstmkit_format')!r}, this lstmkit reads {FORMAT}")
    if header.get("sha256") != _digest(tensors):
        raise CheckpointError(f"{path}: corrupt (tensor data does not match its checksum)")
    try:
        meta = json.loads(header["meta"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: corrupt metadata") from None
    return tensors, meta


# ---- state dicts -------------------------------------------------------------------
def clean_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's weights under their plain names: a DropConnect parametrization
    (``x.parametrizations.w.original``) is saved as ``x.w``, so the file loads into the
    same architecture without the regulariser (and a vanilla one into ``torch.nn``)."""
    return {k.replace("parametrizations.", "").replace(".original", ""): v
            for k, v in model.state_dict().items()}


def load_clean_state_dict(model: nn.Module, tensors: dict[str, Tensor], source: str = "checkpoint") -> None:
    """Inverse of ``clean_state_dict``; CheckpointError when names or shapes disagree."""
    own = {k.replace("parametrizations.", "").replace(".original", ""): k for k in model.state_dict()}
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        raise CheckpointError(f"{source}: incompatible with the configured model "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    want = model.state_dict()
    for k, name in own.items():
        if want[name].shape != tensors[k].shape:
            raise CheckpointError(f"{source}: incompatible shape for {k}: "
                                  f"file {tuple(tensors[k].shape)}, model {tuple(want[name].shape)}")
    model.load_state_dict({name: tensors[k] for k, name in own.items()})


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Optimizer state as ``optim.<param>.<key>`` tensors + its param groups as JSON."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"optim.{idx}.{key}"] = v
            else:
                scalars[f"{idx}.{key}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    for k, v in meta.get("scalars", {}).items():
        idx, key = k.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    groups = meta["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in opt.param_groups]:
        raise CheckpointError("checkpoint: optimizer state does not fit the model's parameters")
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint: optimizer state does not fit ({e})") from None


# ---- runs --------------------------------------------------------------------------
def read_config(run_dir: str | os.PathLike) -> dict:
    """The run's config.json; CheckpointError when ``run_dir`` is not an lstmkit run."""
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"{run}: not a run directory (no such folder)")
    if not (run / CONFIG).is_file():
        raise CheckpointError(f"{run}: not a run directory (no {CONFIG})")
    cfg = read_json(run / CONFIG)
    if cfg.get("lstmkit_format") != FORMAT:
        raise CheckpointError(f"{run / CONFIG}: incompatible run format "
                              f"{cfg.get('lstmkit_format')!r}, this lstmkit reads {FORMAT}")
    return cfg


__all__ = ["CheckpointError", "atomic_write", "remove_stale_temporaries", "write_json", "read_json", "save_tensors", "load_tensors",
           "clean_state_dict", "load_clean_state_dict", "optimizer_to_tensors",
           "optimizer_from_tensors", "read_config", "CONFIG", "MODEL", "CHECKPOINT", "FORMAT"]
