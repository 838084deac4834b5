r"""Distilled students of a diffusion family's denoiser, stored in the run directory.

A :class:`DistilledDenoiser` is a copy of a
:class:`~hepvld.models.denoising.ConditionalDiffusion`'s time embedding and denoiser whose
output is read as :math:`\hat v` (v-prediction, :mod:`hepvld.diffusion.distillation`); it
uses the teacher's frozen learned schedule and detector condition. Trained by
:func:`hepvld.training.distill.distil` (``hepvld distill RUN --steps N``), it is stored as

.. code-block:: text

    RUN/distilled/steps-4.safetensors   the student's weights (time_embedding.*, network.*)
    RUN/distilled/steps-4.json          steps, grid, spacing, the teacher (checkpoint, step,
                                        sha256 of its state), rounds with their losses, ...

(safetensors + JSON, never pickle). :func:`attach_students` (called by
:func:`hepvld.models.rebuild.load_network`, hence by ``hepvld.load``) gives a loaded
network a :class:`StudentStore` on ``RUN/distilled``; ``SamplerSpec("distilled",
steps=4)`` then makes :meth:`ConditionalDiffusion.denoise
<hepvld.models.denoising.ConditionalDiffusion.denoise>` run DDIM with the student on its
grid. A student is refused (clear error) when the network's state is not the one it was
distilled from.

Shapes: ``B`` rows, ``E`` size of the diffused vector (``D`` latent), ``C`` condition.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from hepvld.diffusion.distillation import eps_from_v
from hepvld.diffusion.samplers import GammaFn
from hepvld.diffusion.schedules import alpha_sigma_from_gamma

if TYPE_CHECKING:
    from hepvld.models.denoising import ConditionalDiffusion

__all__ = [
    "FORMAT",
    "DistilledDenoiser",
    "StudentEps",
    "StudentStore",
    "attach_student",
    "attach_students",
    "available_steps",
    "distilled_dir",
    "save_student",
    "state_digest",
    "student_paths",
]

#: ``format`` of the student JSON files.
FORMAT = "hepvld-distilled-student/1"
_NAME = re.compile(r"^steps-(\d+)\.json$")


class DistilledDenoiser(nn.Module):
    r"""v-predicting student: a copy of a diffusion component's time embedding and denoiser.

    ``v_hat = network(cat(z_t, embedding(t), z_y))`` (minus :math:`\sigma_t z_t` when the
    teacher's ε-network has no ``gaussian_eps`` term). Initialised from the teacher's
    weights, this reads the teacher's ``eps_hat - sigma z`` as v, i.e. starts at
    :math:`\alpha_t v_\text{teacher}`: exact as :math:`t \to 0` (α → 1), too small by
    :math:`\alpha_t` (0.09 at :math:`\gamma = 4.8`) near :math:`t = 1`, where an
    ε-network's v is its ε error over α; the first round of distillation learns the rest.
    The read-out as v is the point: a student step's :math:`\hat x = \alpha z - \sigma
    \hat v` does not amplify the network's errors by :math:`1/\alpha` as
    :math:`\hat x = (z - \sigma\hat\epsilon)/\alpha` does, which decides the 1-4 step
    students.

    Parameters
    ----------
    diffusion
        The teacher's component (its time embedding and denoiser are copied, not shared).
    exact_init
        Divide the network output by :math:`\alpha_t`: the initial student is then exactly
        the teacher (:math:`\hat v = (\hat\epsilon - \sigma z)/\alpha`), at the price of
        the ε-prediction's conditioning at large t (``DistillConfig.exact_init``).
    """

    def __init__(self, diffusion: ConditionalDiffusion, *, exact_init: bool = False) -> None:
        super().__init__()
        self.time_embedding = copy.deepcopy(diffusion.time_embedding)
        self.network = copy.deepcopy(diffusion.denoiser)
        self.sigma_baseline = not diffusion.gaussian_eps
        self.exact_init = bool(exact_init)

    def v(
        self, z_t: Tensor, t: Tensor, z_y: Tensor, gamma_fn: GammaFn, *, shared_time: bool = False
    ) -> Tensor:
        r""":math:`\hat v` ``(B, E)`` of ``z_t (B, E)`` at ``t (B,)`` given ``z_y (B, C)``.

        ``shared_time``: every row has the same ``t`` (a sampler step; embedding once).
        """
        t_eval = t[:1] if shared_time else t
        embedding = self.time_embedding(t_eval).expand(z_t.shape[0], -1)
        out: Tensor = self.network(torch.cat([z_t, embedding, z_y], -1))
        if self.sigma_baseline or self.exact_init:
            alpha, sigma = alpha_sigma_from_gamma(gamma_fn(t_eval))
            if self.sigma_baseline:
                out = out - sigma.unsqueeze(-1) * z_t
            if self.exact_init:
                out = out / alpha.unsqueeze(-1)
        return out

    def eps(
        self, z_t: Tensor, t: Tensor, z_y: Tensor, gamma_fn: GammaFn, *, shared_time: bool = False
    ) -> Tensor:
        r""":math:`\hat\epsilon = \sigma z_t + \alpha \hat v` ``(B, E)`` (what the samplers take)."""
        t_eval = t[:1] if shared_time else t
        v = self.v(z_t, t, z_y, gamma_fn, shared_time=shared_time)
        return eps_from_v(v, z_t, gamma_fn(t_eval).unsqueeze(-1))


class StudentEps:
    """A student as the ``eps_fn(z_t (B, E), t (B,))`` of a sampler, for one condition.

    Carries ``distilled_steps`` and ``times`` (the student's grid), which the
    ``distilled`` sampler (:func:`hepvld.diffusion.samplers.distilled`) checks.
    """

    def __init__(
        self,
        student: DistilledDenoiser,
        z_y: Tensor,
        gamma_fn: GammaFn,
        steps: int,
        times: Tensor,
    ) -> None:
        self.student, self.z_y, self.gamma_fn = student, z_y, gamma_fn
        self.distilled_steps = int(steps)
        self.times = times

    def __call__(self, z_t: Tensor, t: Tensor) -> Tensor:
        return self.student.eps(z_t, t, self.z_y, self.gamma_fn, shared_time=True)


def state_digest(module: nn.Module) -> str:
    """sha256 of a module's state dict (sorted keys, dtypes, shapes and bytes): the identity
    of a teacher, recorded with its students."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        h.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def distilled_dir(run_dir: str | os.PathLike[str]) -> Path:
    """``RUN/distilled``: where the students of a run live."""
    return Path(run_dir) / "distilled"


def student_paths(directory: str | os.PathLike[str], steps: int) -> tuple[Path, Path]:
    """``(steps-N.safetensors, steps-N.json)`` in ``directory``."""
    directory = Path(directory)
    return directory / f"steps-{int(steps)}.safetensors", directory / f"steps-{int(steps)}.json"


def available_steps(directory: str | os.PathLike[str]) -> list[int]:
    """Step counts with a complete student (JSON and safetensors) in ``directory``, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and student_paths(directory, int(match.group(1)))[0].is_file():
            found.append(int(match.group(1)))
    return sorted(found)


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_student(
    directory: str | os.PathLike[str],
    steps: int,
    student: DistilledDenoiser,
    meta: Mapping[str, Any],
) -> Path:
    """Write ``steps-N.safetensors`` then ``steps-N.json`` (each atomically) in ``directory``.

    ``meta`` must be JSON-serialisable; ``format`` and ``steps`` are added. Returns the
    JSON path.
    """
    weights, info = student_paths(directory, steps)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    _atomic(weights, lambda p: save_file(state, str(p)))
    text = json.dumps({"format": FORMAT, **meta, "steps": int(steps)}, indent=1)
    _atomic(info, lambda p: p.write_text(text + "\n"))
    return info


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable distilled-student metadata ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a hepvld distilled student (format {FORMAT!r} expected)")
    return meta


class StudentStore:
    """The distilled students a network can sample with: in memory and in a run directory.

    Parameters
    ----------
    directory
        ``RUN/distilled`` (may not exist); None: in-memory students only.
    teacher_digest
        ``() -> sha256`` of the network's current state (:func:`state_digest`), compared
        with the ``teacher.state_sha256`` a stored student records.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        teacher_digest: Callable[[], str] | None = None,
    ) -> None:
        self.directory = None if directory is None else Path(directory)
        self._teacher_digest = teacher_digest
        self._digest: str | None = None
        self._students: dict[int, tuple[DistilledDenoiser, dict[str, Any]]] = {}

    def add(self, student: DistilledDenoiser, meta: Mapping[str, Any]) -> None:
        """Hold ``student`` in memory (``meta`` with ``steps`` and ``grid``)."""
        self._students[int(meta["steps"])] = (student, dict(meta))

    def available(self) -> list[int]:
        """Step counts in memory or on disk."""
        on_disk = [] if self.directory is None else available_steps(self.directory)
        return sorted({*self._students, *on_disk})

    def get(
        self, steps: int, diffusion: ConditionalDiffusion
    ) -> tuple[DistilledDenoiser, dict[str, Any]]:
        """The student of ``steps`` and its metadata (loaded from disk on first use).

        Raises
        ------
        ValueError
            No such student (the message names the directory and the available step
            counts), or one distilled from another state of the network.
        """
        if steps in self._students:
            return self._students[steps]
        where = "in memory" if self.directory is None else str(self.directory)
        if self.directory is None or steps not in available_steps(self.directory):
            have = self.available()
            hint = (
                f"available: {', '.join(map(str, have))} steps"
                if have
                else "none there; run `hepvld distill RUN --steps N` first"
            )
            raise ValueError(
                f"no distilled student with {steps} steps ({where}/steps-{steps}.json); {hint}"
            )
        weights, info = student_paths(self.directory, steps)
        meta = _read_meta(info)
        recorded = str(meta.get("teacher", {}).get("state_sha256", ""))
        if self._teacher_digest is not None:
            if self._digest is None:
                self._digest = self._teacher_digest()
            if recorded != self._digest:
                teacher = meta.get("teacher", {})
                raise ValueError(
                    f"{info} was distilled from another state of this network (checkpoint "
                    f"{teacher.get('checkpoint')!r}, step {teacher.get('step')}, sha256 "
                    f"{recorded[:12]}; the loaded one is {self._digest[:12]}): rerun "
                    f"`hepvld distill` on the run"
                )
        student = DistilledDenoiser(diffusion, exact_init=bool(meta.get("exact_init", False)))
        device = next(diffusion.parameters()).device
        try:
            student.load_state_dict(load_file(str(weights), device=str(device)))
        except Exception as err:  # safetensors or a key/shape mismatch
            raise ValueError(f"{weights}: cannot load the distilled student ({err})") from None
        student.eval().requires_grad_(False)
        self._students[steps] = (student, meta)
        return student, meta


def attach_student(network: nn.Module, student: DistilledDenoiser, meta: Mapping[str, Any]) -> None:
    """Make an in-memory ``student`` (``meta`` with ``steps``, ``grid``, ``spacing``)
    available to ``SamplerSpec("distilled", steps)`` on ``network``."""
    diffusion = _diffusion_of(network)
    if diffusion.students is None:
        diffusion.students = StudentStore(None)
    diffusion.students.add(student, meta)


def attach_students(network: nn.Module, run_dir: str | os.PathLike[str]) -> None:
    """Give ``network`` (a fixed-length diffusion family) a :class:`StudentStore` on
    ``RUN/distilled``; other families are left alone."""
    from hepvld.models.denoising import ConditionalDiffusion

    diffusion = getattr(network, "diffusion", None)
    if not isinstance(diffusion, ConditionalDiffusion):
        return
    ref = weakref.ref(network)

    def digest() -> str:
        net = ref()
        if net is None:  # pragma: no cover - the store lives inside the network
            raise ValueError("the network of this student store is gone")
        return state_digest(net)

    diffusion.students = StudentStore(distilled_dir(run_dir), digest)


def _diffusion_of(network: nn.Module) -> ConditionalDiffusion:
    from hepvld.models.denoising import ConditionalDiffusion

    diffusion = getattr(network, "diffusion", None)
    if not isinstance(diffusion, ConditionalDiffusion):
        name = getattr(network, "name", type(network).__name__)
        raise ValueError(
            f"model {name!r} has no fixed-length latent/data diffusion: distillation supports "
            "vld, uc-vld, c-vld, ldm and vdm (VL-VLD's per-slot denoiser is not supported)"
        )
    return diffusion
