r"""Progressive distillation of a trained diffusion family's denoiser (Salimans & Ho 2022).

``distil(model, data, config) -> DistillResult``, in rounds: the teacher's deterministic
DDIM grid has ``N`` steps (``config.teacher_steps``, 64 by default, on the learned
schedule); a student (a copy of the teacher's denoiser read as a v-prediction,
:class:`~hepvld.models.student.DistilledDenoiser`) learns to take one step from
:math:`t_{2k}` to :math:`t_{2k+2}` that lands where two teacher steps land
(:func:`hepvld.diffusion.distillation.progressive_targets`); then ``N`` halves and the
student becomes the next round's teacher, down to ``config.steps``. Every round's
student is a sampler of its own (``N/2, N/4, ...`` steps) and is handed to ``on_round``.

Everything of the teacher but the copied denoiser is frozen. The detector condition and
the VAE posterior of each training event are computed once, in chunks without gradients
(:func:`cache_diffusion_data`), so a distillation step costs two teacher and one student
call of the ε/v-network on ``config.batch_size`` rows, plus the student's backward pass.

Learning rate: Adam from ``config.lr``, annealed linearly to 0 within each round (as in
the paper) over the round's ``config.steps_per_round`` steps or its share of
``config.max_time`` (the time left divided by the rounds left), whichever ends first.
Random numbers (events, draws of the latent, step indices, ε) come from one generator
seeded with ``config.seed``.

Shapes: ``B`` events, ``C`` condition size, ``E`` size of the diffused vector.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hepvld.diffusion.distillation import WEIGHTINGS, Weighting, loss_weight, progressive_targets
from hepvld.diffusion.samplers import Spacing, timesteps
from hepvld.models.student import DistilledDenoiser, _diffusion_of
from hepvld.training.batches import as_tensor_dict, take

__all__ = [
    "DiffusionData",
    "DistillConfig",
    "DistillResult",
    "RoundLog",
    "cache_diffusion_data",
    "distil",
    "round_schedule",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    r"""Settings of :func:`distil`.

    Attributes
    ----------
    steps
        Student steps of the last round (>= 1).
    teacher_steps
        DDIM steps of the original teacher: ``steps * 2**k`` with ``k >= 1`` (one round each).
    steps_per_round
        Optimiser steps per round (at most; see ``max_time``).
    batch_size
        Training rows per step.
    lr
        Peak learning rate of Adam (annealed linearly to 0 within each round).
    weighting
        ``"snr+1"`` (plain v-loss) or ``"truncated-snr"`` (:data:`~hepvld.diffusion.distillation.WEIGHTINGS`).
    spacing
        Time grid of the teacher (``uniform`` in t or ``logsnr``); halving keeps it.
    max_time
        Wall-clock seconds for all rounds together, from the first round's first step
        (None: no limit); each round gets the time left divided by the rounds left, and
        takes at least one step.
    grad_clip
        Clip the gradient norm at this value (None: off).
    seed
        Seed of every random number.
    log_every
        Steps per logged loss (the mean over the window).
    exact_init
        Read the student's network output as :math:`\alpha_t \hat v` (so the first
        student is exactly the teacher, but as ill-conditioned at large t as an ε-network)
        instead of :math:`\hat v` (see :class:`~hepvld.models.student.DistilledDenoiser`).
        Measured on a tiny C-VLD (64 → 1 steps, 300 steps per round): better students at
        32 and 16 steps (RMS distance to the 256-step DDIM latents 0.024 vs 0.077), worse
        ones at 4 and 1 steps (0.13 and 0.19 vs 0.10 and 0.15); off by default.
    """

    steps: int = 4
    teacher_steps: int = 64
    steps_per_round: int = 1000
    batch_size: int = 1024
    lr: float = 3e-4
    weighting: Weighting = "snr+1"
    spacing: Spacing = "uniform"
    max_time: float | None = None
    grad_clip: float | None = 1.0
    seed: int = 0
    log_every: int = 100
    exact_init: bool = False

    def __post_init__(self) -> None:
        round_schedule(self.teacher_steps, self.steps)  # validates both
        for name in ("steps_per_round", "batch_size", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.spacing not in ("uniform", "logsnr"):
            raise ValueError(f"spacing must be 'uniform' or 'logsnr', got {self.spacing!r}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"max_time must be positive, got {self.max_time!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive, got {self.grad_clip!r}")


def round_schedule(teacher_steps: int, steps: int) -> list[tuple[int, int]]:
    """``[(teacher steps, student steps), ...]`` of the rounds from ``teacher_steps`` to ``steps``.

    Raises
    ------
    ValueError
        Unless ``teacher_steps = steps * 2**k`` with ``k >= 1`` and ``steps >= 1``.
    """
    for name, value in (("steps", steps), ("teacher_steps", teacher_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    ratio = teacher_steps // steps
    if teacher_steps % steps or ratio < 2 or ratio & (ratio - 1):
        raise ValueError(
            f"teacher_steps must be steps times a power of 2 (>= 2): {teacher_steps} teacher "
            f"steps cannot be halved down to {steps}"
        )
    rounds, n = [], teacher_steps
    while n > steps:
        rounds.append((n, n // 2))
        n //= 2
    return rounds


@dataclass
class DiffusionData:
    """What the diffusion is trained on, per training event, cached once.

    Attributes
    ----------
    condition : (B, C)
        Detector condition ``z_y``.
    mean, std : (B, E)
        Posterior of the diffused variable (VLD: the standardised VAE latent; VDM: the
        targets, std 0); a training draw is ``mean + std * N(0, I)``.
    weights : (B,), optional
        Per-event MC weights of the training data.
    """

    condition: Tensor
    mean: Tensor
    std: Tensor
    weights: Tensor | None = None

    def __len__(self) -> int:
        return int(self.condition.shape[0])


@torch.no_grad()
def cache_diffusion_data(
    model: nn.Module,
    data: Mapping[str, Any],
    *,
    batch_size: int = 4096,
    device: torch.device | str | None = None,
) -> DiffusionData:
    """:class:`DiffusionData` of ``data`` (the arrays of :func:`hepvld.data.prepare_data`),
    from the model's ``distillation_data(batch)`` in eval mode, ``batch_size`` events at
    a time; the result lives on ``device`` (default: the model's)."""
    hook = getattr(model, "distillation_data", None)
    _diffusion_of(model)  # a clear error for families without a fixed-length diffusion
    if hook is None:
        raise ValueError(f"model {getattr(model, 'name', model)!r} cannot be distilled")
    tensors = as_tensor_dict(data)
    n = int(next(iter(tensors.values())).shape[0])
    if n == 0:
        raise ValueError("no training events to distil on")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts: list[tuple[Tensor, Tensor, Tensor]] = []
    try:
        for lo in range(0, n, batch_size):
            batch = take(tensors, torch.arange(lo, min(lo + batch_size, n)), dev)
            parts.append(hook(batch))
    finally:
        model.train(was_training)
    condition, mean, std = (torch.cat([p[i] for p in parts]) for i in range(3))
    weights = tensors["weights"].to(dev, torch.float32) if "weights" in tensors else None
    return DiffusionData(condition, mean, std, weights)


@dataclass
class RoundLog:
    """One round of :func:`distil`."""

    teacher_steps: int
    student_steps: int
    #: optimiser steps taken
    optimiser_steps: int
    #: mean loss (per dimension, weighted) over the first and the last logging window
    loss_first: float
    loss_last: float
    wall_s: float
    #: ``[(step, mean loss over the window ending there), ...]``
    curve: list[tuple[int, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DistillResult:
    """What :func:`distil` returns: each round's student by its number of steps."""

    students: dict[int, DistilledDenoiser]
    #: the student's time grid (``steps + 1`` times, 1 to 0) by its number of steps
    grids: dict[int, list[float]]
    rounds: list[RoundLog]


def _with_condition(
    eps: Callable[[Tensor, Tensor, Tensor], Tensor], z_y: Tensor, z: Tensor, t: Tensor
) -> Tensor:
    return eps(z, t, z_y)


class _GridGamma:
    """γ of a time grid, looked up for times on it (the schedule network otherwise).

    The schedule is frozen during distillation and every training time lies on the
    teacher's grid: evaluating its network per row was a third of a step's cost.
    """

    def __init__(self, gamma_fn: Callable[[Tensor], Tensor], grid: Tensor) -> None:
        self.gamma_fn = gamma_fn
        self.grid = grid
        with torch.no_grad():
            self.values = gamma_fn(grid)
        self._ascending = -grid  # grid decreases from 1 to 0

    def __call__(self, t: Tensor) -> Tensor:
        idx = torch.searchsorted(self._ascending, -t.contiguous()).clamp_max(len(self.grid) - 1)
        if bool((self.grid[idx] == t).all()):
            return self.values[idx]
        with torch.no_grad():
            return self.gamma_fn(t)


def _v_loss(
    student: DistilledDenoiser,
    gamma_fn: Callable[[Tensor], Tensor],
    z_t: Tensor,
    t: Tensor,
    gamma_t: Tensor,
    v_target: Tensor,
    z_y: Tensor,
    weights: Tensor | None,
    weighting: Weighting,
) -> Tensor:
    """Weighted mean over rows of ``weight(t) * mean_E (v_hat - v_target)^2``."""
    v_hat = student.v(z_t, t, z_y, gamma_fn)
    per_row = loss_weight(gamma_t, weighting) * (v_hat - v_target).square().mean(-1)
    if weights is None:
        return per_row.mean()
    return (per_row * weights).sum() / weights.sum().clamp_min(torch.finfo(per_row.dtype).tiny)


def distil(
    model: nn.Module,
    data: DiffusionData,
    config: DistillConfig,
    *,
    on_round: Callable[[int, DistilledDenoiser, list[float], list[RoundLog]], None] | None = None,
) -> DistillResult:
    """Progressive distillation of ``model``'s diffusion (see the module docstring).

    Parameters
    ----------
    model
        A trained fixed-length diffusion family (``vld``, ``uc-vld``, ``c-vld``, ``ldm``,
        ``vdm``); left unchanged (its parameters get no gradient).
    data
        :func:`cache_diffusion_data` of the training split, on the model's device.
    config
        :class:`DistillConfig`.
    on_round
        ``on_round(student_steps, student, grid, rounds_so_far)`` after each round (e.g. to
        save the student at once).

    Returns
    -------
    DistillResult
    """
    diffusion = _diffusion_of(model)
    schedule = diffusion.schedule
    device = data.condition.device
    plan = round_schedule(config.teacher_steps, config.steps)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    was_training = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)

    with torch.no_grad():
        full_grid = timesteps(
            config.teacher_steps, gamma_fn=schedule.gamma, spacing=config.spacing, device=device
        )
    # every round's grid is a subsample of the first one: γ looked up there
    gamma_fn = _GridGamma(schedule.gamma, full_grid)

    def teacher_of(net: DistilledDenoiser | None) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
        if net is None:
            return lambda z, t, z_y: diffusion.eps(z, t, z_y, gamma=gamma_fn(t))
        return lambda z, t, z_y: net.eps(z, t, z_y, gamma_fn)

    student = DistilledDenoiser(diffusion, exact_init=config.exact_init).to(device)
    student.eval()  # no dropout: the student matches deterministic teacher steps
    teacher = teacher_of(None)
    result = DistillResult({}, {}, [])
    start: float | None = None
    n_events = len(data)
    try:
        for index, (n_teacher, n_student) in enumerate(plan):
            stride = config.teacher_steps // n_teacher
            grid = full_grid[::stride]
            gamma_grid = gamma_fn.values[::stride]
            student.requires_grad_(True)
            opt = torch.optim.Adam(student.parameters(), lr=config.lr)
            t0 = time.monotonic()
            # the clock starts here: the first Adam imports torch machinery (seconds)
            start = t0 if start is None else start
            budget = None
            if config.max_time is not None:
                budget = max(config.max_time - (t0 - start), 0.0) / (len(plan) - index)
            curve: list[tuple[int, float]] = []
            window: list[float] = []
            step = 0
            while step < config.steps_per_round:
                elapsed = time.monotonic() - t0
                progress = step / config.steps_per_round
                if budget is not None:
                    progress = max(progress, elapsed / budget if budget > 0 else 1.0)
                if progress >= 1.0 and step > 0:
                    break
                for group in opt.param_groups:
                    group["lr"] = config.lr * (1.0 - min(progress, 1.0 - 1e-3))
                idx = torch.randint(n_events, (config.batch_size,), generator=gen, device=device)
                z_y, mean, std = data.condition[idx], data.mean[idx], data.std[idx]
                x = mean + std * torch.randn(
                    mean.shape, generator=gen, device=device, dtype=mean.dtype
                )
                with torch.no_grad():
                    targets = progressive_targets(
                        functools.partial(_with_condition, teacher, z_y),
                        gamma_fn,
                        x,
                        grid,
                        generator=gen,
                        gamma_grid=gamma_grid,
                    )
                loss = _v_loss(
                    student,
                    gamma_fn,
                    *targets,
                    z_y,
                    None if data.weights is None else data.weights[idx],
                    config.weighting,
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
                opt.step()
                step += 1
                window.append(float(loss.detach()))
                if len(window) == config.log_every:
                    curve.append((step, float(np.mean(window))))
                    log.info(
                        "round %d (%d -> %d steps): step %d loss %.5g",
                        index + 1,
                        n_teacher,
                        n_student,
                        step,
                        curve[-1][1],
                    )
                    window = []
            if window:
                curve.append((step, float(np.mean(window))))
            student.requires_grad_(False)
            entry = RoundLog(
                teacher_steps=n_teacher,
                student_steps=n_student,
                optimiser_steps=step,
                loss_first=curve[0][1],
                loss_last=curve[-1][1],
                wall_s=round(time.monotonic() - t0, 3),
                curve=curve,
            )
            result.rounds.append(entry)
            log.info(
                "round %d (%d -> %d steps) done: %d steps in %.1f s, loss %.5g -> %.5g",
                index + 1,
                n_teacher,
                n_student,
                step,
                entry.wall_s,
                entry.loss_first,
                entry.loss_last,
            )
            student_grid = [float(u) for u in grid[::2].cpu()]
            result.students[n_student] = student
            result.grids[n_student] = student_grid
            if on_round is not None:
                on_round(n_student, student, student_grid, list(result.rounds))
            frozen = student
            teacher = teacher_of(frozen)
            student = copy.deepcopy(frozen)
            student.eval()
    finally:
        for p, r in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(r)
        model.train(was_training)
    return result
