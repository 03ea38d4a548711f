"""One task-agnostic training loop: budget, AdamW (or Adam) + schedule, clipping, an
optional weight average, progress, metrics, atomic checkpoints, bit-exact resume and DDP.

Every task (text LM, forecasting, memory lab) plugs in through the small ``Task`` protocol
below; the loop knows nothing about text or files beyond the run directory. A fit with a
run directory writes checkpoints and metrics.csv there; a fit without one (``run_dir=None``)
writes nothing and returns what was measured (``FitResult.history``). Plots are the
caller's business (``report.curves.plot_metrics``).

Resume is exact because everything that decides the next step is saved with each
checkpoint: weights, optimizer moments, the weight average, every rank's RNG state, the
task's carried state, the best evaluation so far and the step, which is the data position
(``Task.batch(step)`` is a pure function of the step).

Data-parallel: under ``torchrun`` (WORLD_SIZE > 1) the loop joins a process group (gloo on
CPU, nccl on GPU), wraps the model in DDP and each rank trains on its shard of every global
batch; with equal shards the update equals the single-process one up to summation order.
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .interop import checkpoint as ckpt


class Task(Protocol):
    """What the loop needs from a task.

    unit: one item ("token"), for the progress rate and metrics.csv's "<unit>s" column.
    items_per_step: items per global batch.  metric_names: the keys ``evaluate`` may return
    (metrics.csv columns).  ``loss``: mean over the rank's items.  ``batch(step)`` must
    depend only on ``step`` (and the rank's shard): it is the data position.
    ``state_tensors`` / ``load_state_tensors``: state carried between batches, every tensor
    with the batch in dim 1 (the loop gathers ranks along it; ``load`` gets the full batch).
    Optional ``should_stop() -> bool``, asked after each evaluation: True ends training there
    (early stopping, a memory task solved) with a final checkpoint.
    Optional ``best_metric``: a metric (lower is better) by which the loop keeps the best
    evaluated weights in model.safetensors (checkpoint.safetensors stays the latest, for
    resume); ``TrainConfig.patience`` then stops a run that no longer improves.
    ``evaluate`` gets the model being trained, or its weight average (``TrainConfig.ema``).
    """

    unit: str
    items_per_step: int
    metric_names: tuple[str, ...]

    def shard(self, rank: int, world: int) -> None: ...
    def batch(self, step: int) -> Any: ...
    def loss(self, model: nn.Module, batch: Any) -> Tensor: ...
    def evaluate(self, model: nn.Module) -> dict[str, float]: ...
    def state_tensors(self) -> dict[str, Tensor]: ...
    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None: ...


@dataclass
class TrainConfig:
    """Training options (saved in config.json under "train").

    steps / minutes: budget; training stops at whichever comes first (one is required). Only
    a steps budget is reproducible bit for bit: the schedule then depends on the step.
    optimizer: "adamw" (decoupled weight decay, Loshchilov & Hutter 2019, arXiv 1711.05101) or
    "adam" (Kingma & Ba 2014, arXiv 1412.6980: one parameter group, no decay; the memory lab's).
    schedule: "cosine": lr is the peak rate, reached after ``warmup`` steps, then cosine decay
    to ``lr * min_lr_ratio`` at the end of the budget; "constant": lr at every step.
    weight_decay: AdamW decay on matrices (not biases, gains, peepholes); 0 with "adam".
    clip: max global gradient norm (Pascanu et al. 2013, arXiv 1211.5063), 0 = off.  ema: decay
    of a moving average of the weights (Polyak & Juditsky 1992) that ``Task.evaluate`` scores
    instead of the raw weights; 0 = off.  eval_every / ckpt_every / log_every: in steps
    (evaluation and a checkpoint also at the end).  patience: with a task that has
    ``best_metric``, stop after this many evaluations without a new best (Prechelt 1998); 0 = off.
    """

    steps: int | None = None
    minutes: float | None = None
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 50
    min_lr_ratio: float = 0.1
    clip: float = 1.0
    seed: int = 0
    eval_every: int = 200
    ckpt_every: int = 200
    log_every: int = 10
    optimizer: str = "adamw"
    schedule: str = "cosine"
    ema: float = 0.0
    patience: int = 0

    def __post_init__(self):
        if self.steps is None and self.minutes is None:
            raise ValueError("budget: expected steps or minutes, got neither")
        if self.steps is not None and (type(self.steps) is not int or self.steps <= 0):
            raise ValueError(f"steps: expected an int > 0, got {self.steps!r}")
        if self.minutes is not None and not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise ValueError(f"minutes: expected a number > 0, got {self.minutes!r}")
        for name in ("eval_every", "ckpt_every", "log_every", "warmup", "patience"):
            if getattr(self, name) < (0 if name in ("warmup", "patience") else 1):
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if not self.lr > 0 or self.clip < 0 or self.weight_decay < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"lr/clip/weight_decay/min_lr_ratio: expected lr > 0, clip >= 0, "
                             f"weight_decay >= 0, 0 <= min_lr_ratio <= 1, got {self.lr}, {self.clip}, "
                             f"{self.weight_decay}, {self.min_lr_ratio}")
        if self.optimizer not in ("adamw", "adam") or self.schedule not in ("cosine", "constant"):
            raise ValueError(f"optimizer/schedule: expected adamw or adam / cosine or constant, got "
                             f"{self.optimizer!r}/{self.schedule!r}")
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError(f"weight_decay: adam has no decoupled decay, expected 0 (or optimizer "
                             f"adamw), got {self.weight_decay}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema: expected a decay in [0, 1), got {self.ema!r}")


@dataclass
class FitResult:
    """Where training ended (step, items, elapsed_s) and what it measured. metrics: the last
    evaluation.  history: the rows logged by this call (metrics.csv's, for a fit without
    one).  averaged: the weight average evaluated when ``TrainConfig.ema`` is set, else None.
    best: {"metric", "value", "step"} of the best evaluation for a task with ``best_metric``
    (its weights are in the run's model.safetensors), else None."""

    step: int
    items: int
    elapsed_s: float
    metrics: dict[str, float]
    history: list[dict] = field(default_factory=list)
    averaged: nn.Module | None = None
    best: dict | None = None


def init_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """-> (rank, world, device). Joins the torchrun process group when WORLD_SIZE > 1."""
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but this torch sees no CUDA device")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, torch.device(("cuda" if cuda else "cpu") if device == "auto" else device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    if not cuda:
        return rank, world, torch.device("cpu")
    torch.cuda.set_device(local := int(os.environ.get("LOCAL_RANK", "0")))
    return rank, world, torch.device("cuda", local)


def _world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _gather(t: Tensor, world: int, device: torch.device) -> list[Tensor]:
    """all_gather through ``device`` (nccl needs CUDA tensors); results on the CPU."""
    if world == 1:
        return [t.cpu()]
    out = [torch.empty_like(t := t.to(device).contiguous()) for _ in range(world)]
    dist.all_gather(out, t)
    return [o.cpu() for o in out]


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine from lr to lr·min_lr_ratio
    as ``progress`` (fraction of the budget spent) goes from 0 to 1; lr itself when the
    schedule is "constant"."""
    if cfg.schedule == "constant":
        return cfg.lr
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
    floor = cfg.min_lr_ratio
    return cfg.lr * warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


def _rng_state(device: torch.device) -> Tensor:
    s = torch.get_rng_state()
    return torch.cat([s, torch.cuda.get_rng_state(device)]) if device.type == "cuda" else s


def _set_rng_state(s: Tensor, device: torch.device) -> None:
    n = torch.get_rng_state().numel()
    torch.set_rng_state(s[:n].clone())
    if device.type == "cuda":
        torch.cuda.set_rng_state(s[n:].clone(), device)


def save_checkpoint(run: Path, model: nn.Module, opt, task: Task, step: int, items: int,
                    elapsed: float, device: torch.device, averaged: AveragedModel | None = None,
                    best: dict | None = None, model_file: bool = True) -> None:
    """Collective in DDP (every rank calls it); rank 0 writes atomically the checkpoint (its
    meta keeps ``best``, the best evaluation so far) and, when ``model_file``, model.safetensors."""
    rank, world = _world()
    rngs = _gather(_rng_state(device), world, device)
    state = {k: torch.cat(_gather(v, world, device), dim=1) for k, v in task.state_tensors().items()}
    if rank == 0:
        weights = ckpt.clean_state_dict(model)
        opt_t, opt_meta = ckpt.optimizer_to_tensors(opt)
        tensors = {**{f"model.{k}": v for k, v in weights.items()}, **opt_t,
                   **{f"rng.{r}": s for r, s in enumerate(rngs)}, **{f"task.{k}": v for k, v in state.items()},
                   **({f"ema.{k}": v for k, v in averaged.state_dict().items()} if averaged is not None else {})}
        meta = {"step": step, "items": items, "elapsed_s": elapsed, "world": world, "optimizer": opt_meta,
                **({"best": best} if best else {})}
        ckpt.save_tensors(run / ckpt.CHECKPOINT, tensors, meta)
        if model_file:
            ckpt.save_tensors(run / ckpt.MODEL, weights, {"step": step})
    if world > 1:
        dist.barrier()


def load_checkpoint(run: Path, model: nn.Module, opt, task: Task, device: torch.device,
                    averaged: AveragedModel | None = None) -> dict:
    """Restore everything ``save_checkpoint`` wrote; -> its meta (step, items, elapsed_s, best)."""
    rank, world = _world()
    tensors, meta = ckpt.load_tensors(run / ckpt.CHECKPOINT)
    if meta.get("world") != world:
        raise ckpt.CheckpointError(f"{run / ckpt.CHECKPOINT}: written by {meta.get('world')} process(es), "
                                   f"resumed with {world}; resume with the same number of processes")
    try:
        ckpt.load_clean_state_dict(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                                   str(run / ckpt.CHECKPOINT))
        ckpt.optimizer_from_tensors(opt, {k: v.to(device) for k, v in tensors.items()}, meta["optimizer"])
        task.load_state_tensors({k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("task.")})
        if averaged is not None:
            averaged.load_state_dict({k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("ema.")})
        _set_rng_state(tensors[f"rng.{rank}"], device)
        return {**{k: meta[k] for k in ("step", "items", "elapsed_s")}, "best": meta.get("best")}
    except (KeyError, ValueError, RuntimeError) as e:
        raise ckpt.CheckpointError(f"{run / ckpt.CHECKPOINT}: incompatible checkpoint ({e})") from None


class _Metrics:
    """metrics.csv, appended row by row; on resume the rows after the checkpoint are dropped."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None):
        self.path, self.columns, rows = path, columns, []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:    # a line cut short by a kill has a None or no step
                rows = [r for r in csv.DictReader(f) if None not in r.values()
                        and (r.get("step") or "").isdigit() and int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, columns)
            w.writeheader()
            w.writerows({k: r.get(k, "") for k in columns} for r in rows)

    def add(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow({k: _fmt(row.get(k)) for k in self.columns})


def _fmt(v) -> str:
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


def fit(task: Task, model: nn.Module, cfg: TrainConfig, run_dir: str | os.PathLike | None = None, *,
        resume: bool = False, device: torch.device | str = "cpu", progress: bool = True,
        desc: str = "train") -> FitResult:
    """Train ``model`` on ``task`` within ``cfg``'s budget, checkpointing into ``run_dir``.

    resume=True continues from ``run_dir/checkpoint.safetensors`` (same world size); a run
    with a steps budget then ends with the same weights as one never interrupted. A task with
    ``best_metric`` has its best evaluated weights in ``run_dir/model.safetensors``
    (``FitResult.best`` says which); the model ends with the latest.  run_dir=None: a fit that
    writes nothing; its bar (labelled ``desc``) is cleared at the end, evaluations not logged.
    """
    if run_dir is None and resume:
        raise ValueError("resume: a fit without a run directory has no checkpoint to resume from")
    run, device = (None if run_dir is None else Path(run_dir)), torch.device(device)
    rank, world = _world()
    task.shard(rank, world)
    model.to(device)
    opt = _optimizer(model, cfg)
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
    start = {"step": 0, "items": 0, "elapsed_s": 0.0, "best": None}
    keep = getattr(task, "best_metric", None)
    if resume:
        start = load_checkpoint(run, model, opt, task, device, averaged)
        if rank == 0:
            ckpt.remove_stale_temporaries(run)
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    scored = model if averaged is None else averaged.module     # what ``task.evaluate`` sees
    best = start["best"]

    def checkpoint(step_, items_, elapsed_):     # model.safetensors: the latest until a best exists
        if run is not None:
            save_checkpoint(run, model, opt, task, step_, items_, elapsed_, device, averaged, best,
                            model_file=not keep or best is None)
    def new_best(step_, metrics_) -> bool:
        """Rank 0, after an evaluation: a new best is recorded, and its weights written."""
        nonlocal best
        value = metrics_.get(keep) if keep else None
        if value is None or not math.isfinite(value) or best is not None and value >= best["value"]:
            return False
        best = {"metric": keep, "value": float(value), "step": step_}
        if run is not None:                  # the evaluated weights: the average when there is one
            ckpt.save_tensors(run / ckpt.MODEL, ckpt.clean_state_dict(scored), {"step": step_, keep: value})
        return True

    if not resume:                           # the training noise stream: per rank, from the seed
        torch.manual_seed(cfg.seed * 1009 + rank + 1)
        if run is not None and rank == 0:
            run.mkdir(parents=True, exist_ok=True)
        checkpoint(0, 0, 0.0)                # resumable from the first second
    step, items, elapsed0 = start["step"], start["items"], start["elapsed_s"]
    budget_s = cfg.minutes * 60 if cfg.minutes else math.inf
    metrics = _Metrics(run / "metrics.csv", ["step", task.unit + "s", "elapsed_s", "lr", "train_loss",
                                             *task.metric_names], start["step"] if resume else None) \
        if rank == 0 and run is not None else None
    bar = tqdm(total=cfg.steps * task.items_per_step if cfg.steps else None, initial=items,
               unit=task.unit, unit_scale=True, dynamic_ncols=True, disable=not progress or rank != 0,
               desc=desc, leave=run is not None)
    t0, losses, last, history, elapsed = time.monotonic(), [], {}, [], elapsed0

    def frac(step_, elapsed_):
        return max(step_ / cfg.steps if cfg.steps else 0.0, elapsed_ / budget_s)
    done = frac(step, elapsed) >= 1.0        # resuming a run that had already finished

    while not done:
        lr = learning_rate(cfg, step, frac(step, elapsed))
        for g in opt.param_groups:
            g["lr"] = lr
        net.train()
        loss = task.loss(net, task.batch(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        if averaged is not None:
            averaged.update_parameters(model)
        step, items = step + 1, items + task.items_per_step
        elapsed = _agreed(elapsed0 + time.monotonic() - t0, world, device, budget_s)
        done = frac(step, elapsed) >= 1.0
        losses.append(loss.item())              # rank 0's shard: the logged train loss
        bar.update(task.items_per_step)
        if not cfg.steps:                        # a time budget: stretch the bar to the expected end
            rate = (items - start["items"]) / max(elapsed - elapsed0, 1e-9)
            bar.total = int(items + rate * max(budget_s - elapsed, 0))
        row = None
        if step % cfg.log_every == 0 or done:
            row = {"step": step, task.unit + "s": items, "elapsed_s": elapsed, "lr": lr,
                   "train_loss": sum(losses) / len(losses)}
            losses = []
        if step % cfg.eval_every == 0 or done:
            if rank == 0:
                last = task.evaluate(scored)
                mark = " (best)" if new_best(step, last) else ""
                if run is not None:                  # a logged run: one line per evaluation
                    bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()) + mark)
            row = {**(row or {"step": step, task.unit + "s": items, "elapsed_s": elapsed, "lr": lr}), **last}
            done = _should_stop(task, rank, world, device, bool(  # patience: evaluations since the best
                cfg.patience and best and step - best["step"] >= cfg.patience * cfg.eval_every)) or done
        if row is not None:
            history.append(row)
            metrics and metrics.add(row)
        bar.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.3f}" for k, v in list(last.items())[-1:]})
        if step % cfg.ckpt_every == 0 or done:
            checkpoint(step, items, elapsed)
    bar.close()
    last = task.evaluate(scored) if rank == 0 and not last else last
    return FitResult(step, items, elapsed, last, history, None if averaged is None else scored, best)


def _should_stop(task: Task, rank: int, world: int, device: torch.device, stale: bool = False) -> bool:
    """The task's optional ``should_stop()`` or ``stale`` (patience run out), asked on rank 0
    after an evaluation and shared with every rank, so that all ranks stop at the same step."""
    stop = torch.tensor([rank == 0 and (stale or bool(getattr(task, "should_stop", lambda: False)()))],
                        device=device)
    if world > 1:
        dist.broadcast(stop, 0)
    return bool(stop)


def _agreed(elapsed: float, world: int, device: torch.device, budget_s: float) -> float:
    """Rank 0's clock for every rank, so that a time budget stops all ranks at the same step."""
    if world == 1 or budget_s == math.inf:
        return elapsed
    t = torch.tensor([elapsed], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t)


__all__ = ["Task", "TrainConfig", "FitResult", "fit", "init_distributed", "learning_rate",
           "save_checkpoint", "load_checkpoint"]
