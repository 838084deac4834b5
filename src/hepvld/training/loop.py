"""The training loop: ``train(model, train_data, val_data, config, run_dir) -> TrainResult``.

Read :func:`train` top to bottom: setup, (resume), then one ``while`` loop of
forward / backward / clip / step / EMA, with logging, validation and checkpoints hung off
step counters. Everything random is drawn from generators derived from ``config.seed``:

* the epoch order from ``(seed, epoch)`` (:func:`~hepvld.training.batches.epoch_indices`);
* the model's own noise (diffusion times, reparametrisation, ...) from a
  ``torch.Generator`` owned by the loop and passed as ``model.loss(batch, generator=gen)``;
* code that can only use torch's global RNG (``nn.Dropout``) runs inside
  ``torch.random.fork_rng``: the global state is set from the seed on entry, saved in
  checkpoints, and the caller's global RNG is restored on exit.

So a run resumed from a checkpoint continues bit for bit (on CPU) as if never stopped.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

import hepvld
from hepvld.config import TrainConfig, to_dict
from hepvld.training.batches import (
    Batch,
    as_tensor_dict,
    batch_weight,
    derive_seed,
    epoch_indices,
    num_events,
    take,
)
from hepvld.training.checkpoint import load_checkpoint, save_checkpoint
from hepvld.training.distributed import (
    DistContext,
    all_reduce_sum,
    any_rank,
    distributed_context,
    gather_states,
)
from hepvld.training.metrics import MetricsLogger, log_to_file
from hepvld.training.optim import EMA, build_optimizer, build_scheduler

__all__ = ["LossModule", "TrainResult", "evaluate", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` hands back."""

    run_dir: Path
    #: optimiser steps taken in total (including those before a resume)
    step: int
    #: completed epochs
    epoch: int
    #: weighted means of the loss terms over the last logging window
    train_metrics: dict[str, float]
    #: weighted means over the validation set with the EMA weights (None without val data)
    val_metrics: dict[str, float] | None
    #: the last checkpoint written
    checkpoint: Path | None
    stopped: Literal["completed", "max_time"]
    #: wall-clock seconds of this call
    elapsed: float
    #: the trained network (raw weights) and a frozen copy holding the EMA weights
    model: nn.Module
    ema_model: nn.Module


class LossModule(nn.Module):
    """``forward(batch, generator) -> model.loss(batch, generator=generator)``.

    Makes the loss the forward pass, which is what ``DistributedDataParallel`` and
    ``torch.compile`` wrap. Models whose ``loss`` takes no ``generator`` are called without.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss_fn: Callable[..., Any] = getattr(model, "loss")  # noqa: B009 (typed access)
        self.takes_generator = "generator" in inspect.signature(self.loss_fn).parameters

    def forward(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        terms = (
            self.loss_fn(batch, generator=generator)
            if self.takes_generator
            else self.loss_fn(batch)
        )
        if not isinstance(terms, Mapping) or "loss" not in terms:
            raise TypeError(
                f"{type(self.model).__name__}.loss must return a dict with key 'loss', got {type(terms)}"
            )
        return dict(terms)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Mapping[str, Tensor],
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    ctx: DistContext | None = None,
) -> dict[str, float]:
    """Per-event-weighted mean of every loss term of ``model.loss`` over ``data``.

    Batch results are combined with the batch's weight sum, so the result equals the
    whole-set value of a loss that is a weighted mean over events. Under ``torchrun``
    (``ctx``) each process takes every ``world_size``-th event and the sums are reduced.
    The model is put in ``eval()`` mode meanwhile.
    """
    device = torch.device(device)
    ctx = ctx or DistContext(rank=0, world_size=1, device=device, enabled=False)
    loss_fn = LossModule(model)
    was_training = model.training
    model.eval()
    sums: dict[str, Tensor] = {}
    total = torch.zeros((), device=device)
    indices = torch.arange(ctx.rank, num_events(data), ctx.world_size)
    for start in range(0, len(indices), batch_size):
        batch = take(data, indices[start : start + batch_size], device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            terms = loss_fn(batch, generator)
        weight = batch_weight(batch)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + weight * value.detach().float()
        total += weight
    model.train(was_training)
    keys = list(sums)
    packed = all_reduce_sum(torch.stack([*(sums[k] for k in keys), total]), ctx)
    return {k: (packed[i] / packed[-1]).item() for i, k in enumerate(keys)}


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any | None,
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    extra_state: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``model`` by minimising ``model.loss``; validate, log and checkpoint into ``run_dir``.

    Parameters
    ----------
    model
        Implements ``loss(batch, generator=None) -> dict[str, Tensor]``: ``"loss"`` is the
        per-event-weighted scalar to minimise, other entries are scalars to log. All its
        randomness should come from ``generator`` (or torch's global RNG, e.g. dropout).
    train_data, val_data
        Mappings of tensors with a common leading size ``B`` (``objects``, ``mask``,
        ``globals``, ``targets``, ``weights``, ...) or dataclasses of them;
        ``val_data`` may be ``None``.
    config
        :class:`hepvld.config.TrainConfig`.
    run_dir
        Output folder: ``train.log``, ``metrics.csv``, ``loss.png``, ``config.json``,
        ``checkpoints/``.
    extra_state
        JSON-serialisable dict stored in every checkpoint as ``meta["extra"]`` (model name,
        model config, preprocessing state, ...) so the model can be rebuilt from it.
    resume
        Continue from the latest checkpoint in ``run_dir`` (step, optimiser, schedule, EMA,
        data order and RNG states); ``config`` may differ (e.g. more epochs), which is logged.
    """
    run_dir = Path(run_dir)
    extra = dict(extra_state or {})
    try:
        json.dumps(extra)  # fail now rather than at the first checkpoint
    except TypeError as err:
        raise TypeError(f"extra_state must be JSON-serialisable: {err}") from None
    if not resume and (run_dir / "checkpoints" / "latest.json").exists():
        raise FileExistsError(
            f"{run_dir} already holds a run: pass resume=True to continue it, or use a new directory"
        )
    t_start = time.perf_counter()

    with contextlib.ExitStack() as stack:
        # ---------------------------------------------------------------- setup
        ctx = stack.enter_context(distributed_context(config.device))
        device = ctx.device
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(log_to_file(run_dir / "train.log"))
        if config.num_threads is not None:
            stack.enter_context(_torch_threads(config.num_threads))
        cuda_devices = [device.index] if device.type == "cuda" else []
        stack.enter_context(torch.random.fork_rng(devices=cuda_devices))

        train_tensors = _place(as_tensor_dict(train_data), device)
        val_tensors = None if val_data is None else _place(as_tensor_dict(val_data), device)
        n_train = num_events(train_tensors)
        per_rank = n_train // ctx.world_size
        if per_rank == 0:
            raise ValueError(f"{n_train} training events for {ctx.world_size} processes")
        steps_per_epoch = max(1, per_rank // config.batch_size)
        total_steps = config.max_steps or config.epochs * steps_per_epoch

        model.to(device)
        ema = EMA(model, config.ema_decay)
        optimizer = build_optimizer(model, config)
        # Seconds of training spent before this process (from the checkpoint on resume):
        # with decay_over="time" the cosine and max_time run over the whole run.
        spent_before = 0.0

        def seconds_spent() -> float:
            return spent_before + time.perf_counter() - t_start

        def time_fraction() -> float:
            return min(1.0, seconds_spent() / config.max_time) if config.max_time else 0.0

        scheduler = build_scheduler(optimizer, config, total_steps, time_fraction)
        amp_dtype = _amp_dtype(config.amp, device, cpu=config.amp_cpu)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        net: nn.Module = LossModule(model)
        if config.compile:
            net = cast(nn.Module, torch.compile(net))
        if ctx.enabled:
            ids = [device.index] if device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        loss_gen = torch.Generator(device).manual_seed(derive_seed(config.seed, "loss", ctx.rank))
        _set_global_rng(derive_seed(config.seed, "global", ctx.rank), device)

        step, epoch, batch_in_epoch = 0, 0, 0
        if resume:
            ckpt = load_checkpoint(run_dir, map_location=device)
            model.load_state_dict(ckpt.model_state)
            if ckpt.ema_state is not None:
                ema.module.load_state_dict(ckpt.ema_state)
                ema.num_updates = int(ckpt.meta["ema_updates"])
            if ckpt.optimizer_state is None or ckpt.scheduler_state is None:
                raise ValueError(f"{ckpt.path}: no optimiser/scheduler state to resume from")
            optimizer.load_state_dict(ckpt.optimizer_state)
            scheduler.load_state_dict(ckpt.scheduler_state)
            if ckpt.scaler_state:
                scaler.load_state_dict(ckpt.scaler_state)
            step, epoch = ckpt.meta["step"], ckpt.meta["epoch"]
            batch_in_epoch = ckpt.meta["batch_in_epoch"]
            if config.decay_over == "time":
                spent_before = float(ckpt.meta["config"].get("train_seconds", 0.0))
            _restore_rng(ckpt.rng_state, ctx, loss_gen, device)
            _log_config_changes(ckpt.meta["config"], to_dict(config))
            log.info(
                "resumed from %s at step %d (epoch %d, batch %d)",
                ckpt.path,
                step,
                epoch,
                batch_in_epoch,
            )

        metrics = MetricsLogger(run_dir, resume_step=step if resume else None, enabled=ctx.is_main)
        stack.callback(metrics.close)
        if ctx.is_main:
            _write_json(
                run_dir / "config.json",
                {
                    "train": to_dict(config),
                    "extra": extra,
                    "hepvld_version": hepvld.__version__,
                },
            )
        n_params = sum(p.numel() for p in model.parameters())
        log.info(
            "training %s (%d parameters) on %s, process %d of %d%s: %d events, "
            "%d steps/epoch, %d steps, amp=%s, compile=%s",
            type(model).__name__,
            n_params,
            device,
            ctx.rank,
            ctx.world_size,
            " (DDP)" if ctx.enabled else "",
            n_train,
            steps_per_epoch,
            total_steps,
            amp_dtype,
            config.compile,
        )

        def save() -> Path | None:
            """Checkpoint on rank 0 (all ranks contribute their RNG states)."""
            rng = gather_states(_rng_states(loss_gen, device), ctx)
            path = None
            if ctx.is_main:
                path = save_checkpoint(
                    run_dir,
                    model,
                    step=step,
                    epoch=epoch,
                    batch_in_epoch=batch_in_epoch,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    scaler=scaler,
                    ema=ema,
                    rng_state=rng,
                    config={
                        **to_dict(config),
                        "world_size": ctx.world_size,
                        "train_seconds": round(seconds_spent(), 3),
                    },
                    extra=extra,
                    keep_last=config.keep_checkpoints,
                )
            if ctx.enabled:
                dist.barrier()
            return path

        # ---------------------------------------------------------------- loop
        window = _Window(device)
        train_metrics: dict[str, float] = {}
        val_metrics: dict[str, float] | None = None
        checkpoint: Path | None = None
        stopped: Literal["completed", "max_time"] = "completed"
        pbar = tqdm(
            total=total_steps, initial=step, unit="step", disable=None if ctx.is_main else True
        )
        stack.callback(pbar.close)
        order: Tensor | None = None
        model.train()
        while step < total_steps:
            if order is None:
                order = epoch_indices(
                    n_train, config.seed, epoch, rank=ctx.rank, world_size=ctx.world_size
                )
            idx = order[
                batch_in_epoch * config.batch_size : (batch_in_epoch + 1) * config.batch_size
            ]
            batch = take(train_tensors, idx, device)

            # forward, backward, update
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                terms = net(batch, loss_gen)
            optimizer.zero_grad(set_to_none=True)
            weight = batch_weight(batch)
            scaler.scale(terms["loss"] * _ddp_weight_factor(weight, ctx)).backward()
            grad_norm = None
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            ema.update(model)
            window.add(terms, weight, len(idx), grad_norm)

            step += 1
            batch_in_epoch += 1
            epoch_done = batch_in_epoch == steps_per_epoch
            if epoch_done:
                epoch, batch_in_epoch, order = epoch + 1, 0, None
            last = step == total_steps
            out_of_time = config.max_time is not None and any_rank(
                seconds_spent() > config.max_time, ctx
            )
            pbar.update(1)

            # log the training window
            if step % config.log_every == 0 or last or out_of_time:
                train_metrics, events_per_s = window.flush(ctx)
                if not math.isfinite(train_metrics["loss"]):
                    raise FloatingPointError(
                        f"training loss is {train_metrics['loss']} at step {step}"
                    )
                metrics.log(step, step / steps_per_epoch, "train", lr, train_metrics)
                pbar.set_postfix(loss=f"{train_metrics['loss']:.4g}", ev_s=f"{events_per_s:.3g}")
                log.info(
                    "step %d train %s (%.3g events/s)", step, _fmt(train_metrics), events_per_s
                )

            # validate with the EMA weights
            validate = (step % config.val_every == 0) if config.val_every else epoch_done
            if val_tensors is not None and (validate or last):
                val_gen = torch.Generator(device).manual_seed(
                    derive_seed(config.seed, "val", ctx.rank)
                )
                val_metrics = evaluate(
                    ema.module,
                    val_tensors,
                    batch_size=config.batch_size,
                    device=device,
                    generator=val_gen,
                    amp_dtype=amp_dtype,
                    ctx=ctx,
                )
                metrics.log(step, step / steps_per_epoch, "val", lr, val_metrics)
                log.info("step %d val   %s", step, _fmt(val_metrics))
            if validate or last or out_of_time:  # the plot ends where training ends
                metrics.plot()

            # checkpoint
            every = config.checkpoint_every
            if (step % every == 0 if every else epoch_done) or last or out_of_time:
                checkpoint = save()

            if out_of_time and not last:
                stopped = "max_time"
                log.warning("max_time=%ss reached at step %d: stopping", config.max_time, step)
                break

        elapsed = time.perf_counter() - t_start
        log.info("finished at step %d after %.1fs (%s)", step, elapsed, stopped)
        return TrainResult(
            run_dir=run_dir,
            step=step,
            epoch=epoch,
            train_metrics=train_metrics,
            val_metrics=val_metrics,
            checkpoint=checkpoint,
            stopped=stopped,
            elapsed=elapsed,
            model=model,
            ema_model=ema.module,
        )


# ------------------------------------------------------------------------- helpers


class _Window:
    """Weighted sums of the loss terms since the last log row, for weighted means."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.weight = torch.zeros((), device=self.device)
        self.grad_norm = torch.zeros((), device=self.device)
        self.steps = 0
        self.events = 0
        self.t0 = time.perf_counter()

    def add(
        self, terms: Mapping[str, Tensor], weight: Tensor, events: int, grad_norm: Tensor | None
    ) -> None:
        for key, value in terms.items():
            self.sums[key] = self.sums.get(key, 0.0) + weight * value.detach().float()
        self.weight += weight
        if grad_norm is not None:
            self.grad_norm += grad_norm.detach().float()
        self.steps += 1
        self.events += events

    def flush(self, ctx: DistContext) -> tuple[dict[str, float], float]:
        """``({term: weighted mean over all processes}, events per second)``; then reset."""
        keys = list(self.sums)
        packed = all_reduce_sum(torch.stack([*(self.sums[k] for k in keys), self.weight]), ctx)
        means = {k: (packed[i] / packed[-1]).item() for i, k in enumerate(keys)}
        if self.grad_norm.item() > 0:
            means["grad_norm"] = self.grad_norm.item() / self.steps
        rate = self.events * ctx.world_size / max(time.perf_counter() - self.t0, 1e-9)
        self._reset()
        return means, rate


def _ddp_weight_factor(weight: Tensor, ctx: DistContext) -> Tensor | float:
    """``world_size * w_rank / sum_r w_r``: the factor by which a process's loss (its own
    weighted mean) is scaled before backward, so that the gradients DDP averages over
    processes are those of the weighted mean over the union of their batches (with
    unequal MC weights the plain average of per-process means would not be). 1 without
    DDP."""
    if not ctx.enabled:
        return 1.0
    total = all_reduce_sum(weight.detach().clone(), ctx)
    return ctx.world_size * weight.detach() / total


def _fmt(terms: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.5g}" for k, v in terms.items())


def _place(data: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Keep the data on the GPU when it fits comfortably (a quarter of free memory)."""
    if device.type == "cuda":
        nbytes = sum(t.numel() * t.element_size() for t in data.values())
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes < free / 4:
            return {k: v.to(device) for k, v in data.items()}
    return data


def _amp_dtype(amp: str, device: torch.device, *, cpu: bool = False) -> torch.dtype | None:
    if device.type == "cpu" and cpu:
        return torch.bfloat16
    if device.type != "cuda" or amp == "none":
        return None
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        log.warning("bf16 is not supported on %s: using fp16 autocast", device)
        return torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _set_global_rng(seed: int, device: torch.device) -> None:
    """Set torch's global RNG (inside ``fork_rng``) for code that cannot take a generator."""
    torch.set_rng_state(torch.Generator().manual_seed(seed).get_state())
    if device.type == "cuda":
        torch.cuda.set_rng_state(torch.Generator(device).manual_seed(seed).get_state(), device)


def _rng_states(loss_gen: torch.Generator, device: torch.device) -> dict[str, Tensor]:
    states = {"loss": loss_gen.get_state(), "cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _restore_rng(
    states: Mapping[str, Tensor], ctx: DistContext, loss_gen: torch.Generator, device: torch.device
) -> None:
    prefix = f"rank{ctx.rank}."
    saved_world = sum(1 for k in states if k.endswith(".loss"))
    if saved_world != ctx.world_size or prefix + "loss" not in states:
        log.warning(
            "checkpoint has RNG states of %d processes, running %d: fresh RNG streams "
            "(the run continues, but not bit for bit)",
            saved_world,
            ctx.world_size,
        )
        return
    loss_gen.set_state(states[prefix + "loss"])
    torch.set_rng_state(states[prefix + "cpu"])
    if device.type == "cuda" and prefix + "cuda" in states:
        torch.cuda.set_rng_state(states[prefix + "cuda"], device)


def _log_config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    changed = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
    for key, (old, new) in changed.items():
        log.warning("resuming with %s=%r (checkpoint had %r)", key, new, old)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)
