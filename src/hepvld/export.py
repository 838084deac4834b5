"""``torch.export`` of the unfolding network, for ``coffea.ml_tools.torch_wrapper`` users.

TorchScript is deprecated in torch 2.13; :func:`export_sampler` produces a
``torch.export.ExportedProgram`` of the detector encoder + the sampler loop (fixed
sampler and number of steps, unrolled) + the VAE decoder, optionally with the network's
own normalisation buffers (physical units in and out):

.. code-block:: python

    ep = export_sampler(hepvld.load("run"), sampler="dpmpp2m", steps=20,
                        path="vld.pt2")               # saved with its settings
    draws = ep.module()(objects, mask, globals, noise)   # (B, S, K * H) physical

Inputs are padded tensors exactly as produced by :func:`hepvld.features.detector_tensors`
(``objects (B, N, F)`` float32, ``mask (B, N)`` bool, ``globals (B, G)`` float32, physical
units when ``physical=True``) plus **every random number as an input**: the initial noise
``noise (B, S, *noise_shape)`` (:func:`hepvld.api.event_noise` gives the per-event
reproducible one) and, for a stochastic sampler (``ddpm``) only, the per-step noise
``step_noise (B, S, T, *noise_shape)`` with ``T = steps`` (``step_noise[:, :, i]`` is
:func:`hepvld.api.step_noise` ``(seed, events)(i, (B, S, *noise_shape))``). The program
draws no random number itself. The batch ``B`` (including 0) and the number of draws
``S`` (≥ 1) are dynamic. With the same random inputs the program reproduces
:meth:`~hepvld.models.base.ConditionalGenerator.sample` (``physical=False``) or
:func:`hepvld.unfold` (``physical=True``, its ``raw`` / ``raw_mask`` fields): it runs the
same code path, so the discrete outputs (mask, multiplicity, types) are identical and the
values equal to float rounding — the traced program may run the attention with another
CPU kernel than eager mode (measured on the trained ``small`` c-vl-vld of
``/work/cache/vlvld/runA``: at most 8e-6 in preprocessed units, 8e-4 GeV physical, i.e.
~1e-6 relative; 0 on the tests' ``tiny`` networks). A discrete draw could in principle
differ only when its uniform lies within that rounding of a CDF edge.

**Variable-length (particle-level) models** (``vl-vld``, ``uc-vl-vld``, ``c-vl-vld``):
``noise_shape = (K + 1, D)``; rows ``0 .. K - 1`` are the slots' initial noise, and row
``K`` holds the random numbers of the discrete draws: ``Phi(noise[..., K, 0])`` is the
uniform of the multiplicity's inverse CDF, ``Phi(noise[..., K, 1])`` the type
composition's (for ``D = 1``: the residual of the multiplicity's uniform; see
:mod:`hepvld.models.vlvld`). The program returns a tuple

* ``values (B, S, K * H)`` float32: each draw's slots flattened (physical: the ``raw``
  field of :func:`hepvld.unfold`; types one-hot in the type columns, padded slots 0);
* ``mask (B, S, K)`` bool: the real slots (slot 0 the event vector, always real; the
  ``raw_mask`` field);
* ``n_objects (B, S)`` int64: the drawn multiplicity ``n`` (``mask[..., 1:].sum(-1)``);
* ``types (B, S, K - 1)`` int64: each object slot's type, an index into
  :data:`hepvld.features.particle_level.OBJECT_TYPES` (``-1`` for padded slots).

``level.to_records(values.reshape(B, S, K, H), mask)`` (the target level of the model,
:func:`hepvld.load` ``(...).level``) builds the same jagged records as
:func:`hepvld.unfold`. A fixed-multiplicity level's program returns only ``values``.

:class:`VLDTorchWrapper` (a ``coffea.ml_tools.torch_wrapper`` loading the ``.pt2`` with
``torch.export.load`` instead of ``torch.jit.load``) is created on first access, so that
importing this module does not import coffea. For a variable-length program it returns
one awkward record array with the fields ``values``, ``mask``, ``n_objects``, ``types``
above (regular arrays; the same in the dask path).
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from hepvld.models.base import ConditionalGenerator

__all__ = [
    "ExportableSampler",
    "export_sampler",
    "load_exported",
    "read_metadata",
]

log = logging.getLogger(__name__)

_METADATA = "hepvld.json"


class ExportableSampler(nn.Module):
    """``(objects, mask, globals, noise[, step_noise]) -> draws`` with a fixed sampler.

    Parameters
    ----------
    model
        A network following the model contract (``sample``/``unfold`` with ``noise=``),
        e.g. a :class:`~hepvld.models.vld.VLD` or a :class:`~hepvld.models.vlvld.VLVLD`.
    sampler, steps
        Sampler name and number of steps, frozen into the program.
    physical
        Physical detector tensors in, physical target values out, through the network's
        own normalisation buffers (:meth:`~hepvld.models.base.ConditionalGenerator.unfold`);
        otherwise preprocessed in, preprocessed out (:meth:`sample`).
    """

    def __init__(
        self, model: nn.Module, *, sampler: str = "dpmpp2m", steps: int = 20, physical: bool = False
    ) -> None:
        super().__init__()
        from hepvld.diffusion import SamplerSpec

        self.model = cast("ConditionalGenerator", model)
        self.spec = SamplerSpec(sampler, int(steps))  # validates the name
        self.sampler = sampler
        self.steps = int(steps)
        self.physical = bool(physical)
        level = getattr(model, "level", None)
        #: The level has a varying multiplicity: the program also returns the slot mask.
        self.variable = level is not None and not level.fixed_multiplicity
        self.n_continuous = int(getattr(model, "n_continuous", 0))
        self.n_types = int(getattr(model, "n_types", 0))

    @property
    def stochastic(self) -> bool:
        """The sampler draws per-step noise (``ddpm``): the program takes ``step_noise``."""
        return self.spec.stochastic

    def forward(
        self,
        objects: Tensor,
        mask: Tensor,
        globals: Tensor,
        noise: Tensor,
        step_noise: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor, Tensor, Tensor]:
        """Posterior draws.

        Parameters
        ----------
        objects : (B, N, F) float32
        mask : (B, N) bool
        globals : (B, G) float32
        noise : (B, S, *noise_shape) float32
            Initial noise (``model.noise_shape``; a variable level's row ``K`` holds the
            multiplicity's and the composition's random numbers, module docstring).
        step_noise : (B, S, T, *noise_shape) float32, optional
            Per-step noise of a stochastic sampler (``T = steps``); needed for ``ddpm``,
            refused for the others.

        Returns
        -------
        Tensor (B, S, K * H)
            Fixed level: each draw's target values, flattened (the 55-vector at parton
            level; the ``raw`` field of :func:`hepvld.unfold`).
        tuple
            Variable level: ``values (B, S, K * H)``, ``mask (B, S, K)`` bool,
            ``n_objects (B, S)`` int64, ``types (B, S, K - 1)`` int64 (``-1`` padded).
        """
        if self.stochastic != (step_noise is not None):
            raise ValueError(
                f"sampler {self.sampler!r}: step_noise is "
                + ("needed" if self.stochastic else "only for a stochastic sampler")
            )
        per_step = None
        if step_noise is not None:
            given = step_noise

            def per_step(step: int, shape: tuple[int, ...]) -> Tensor:
                return given[:, :, step]

        call = self.model.unfold if self.physical else self.model.sample
        draws = call(
            objects,
            mask,
            globals,
            n_samples=noise.shape[1],
            sampler=self.spec,
            noise=noise,
            step_noise=per_step,
        )
        values = draws.values.flatten(2)
        if not self.variable:
            return values
        slot_mask = draws.mask
        objects_mask = slot_mask[..., 1:]
        tc = slice(self.n_continuous, self.n_continuous + self.n_types)
        types = draws.values[..., 1:, tc].argmax(-1)
        types = torch.where(objects_mask, types, torch.full_like(types, -1))
        return values, slot_mask, objects_mask.sum(-1), types


def export_sampler(
    model: Any,
    *,
    sampler: str = "dpmpp2m",
    steps: int = 20,
    physical: bool = True,
    max_jets: int | None = None,
    path: str | os.PathLike[str] | None = None,
) -> torch.export.ExportedProgram:
    """``torch.export`` the encoder + sampler loop + decoder with dynamic batch and draws.

    Parameters
    ----------
    model
        A :class:`hepvld.api.UnfoldingModel` (from :func:`hepvld.load`) or a bare
        network (then ``physical`` must be False and ``max_jets`` given); a fixed-length
        family or a variable-length one (VL-VLD: the program also returns the slot mask,
        the multiplicity and the types, module docstring).
    sampler, steps
        Frozen into the program (the loop is unrolled: program size grows with steps).
        A stochastic sampler (``ddpm``) adds the input ``step_noise``.
    physical
        Physical units in and out (the network's normalisation buffers).
    max_jets
        Padded jets per event (``N = 1 + max_jets``); default the model's.
    path
        Also save the program there (``torch.export.save``) with the settings as the
        extra file ``hepvld.json`` (read back by :func:`load_exported`).

    Returns
    -------
    torch.export.ExportedProgram
        Call ``.module()(objects, mask, globals, noise[, step_noise])``; batch ``B`` may
        be 0.
    """
    from hepvld.api import UnfoldingModel

    if isinstance(model, UnfoldingModel):
        net = model.model
        max_jets = model.max_jets if max_jets is None else max_jets
    else:
        net = model
        if physical:
            raise ValueError("physical=True needs an UnfoldingModel (with its preprocessing)")
        if max_jets is None:
            raise ValueError("max_jets is needed for a bare network")
    wrapper = ExportableSampler(net, sampler=sampler, steps=steps, physical=physical).eval()
    enc = net.detector_encoder
    device = next(net.parameters()).device
    b, n, s = 2, 1 + int(max_jets), 2
    example: tuple[Tensor, ...] = (
        torch.zeros(b, n, enc.in_features, device=device),
        torch.ones(b, n, dtype=torch.bool, device=device),
        torch.zeros(b, enc.global_features, device=device),
        torch.zeros(b, s, *net.noise_shape, device=device),
    )
    batch = torch.export.Dim("batch", min=0)
    draws = torch.export.Dim("draws", min=1)
    dynamic: dict[str, Any] = {
        "objects": {0: batch},
        "mask": {0: batch},
        "globals": {0: batch},
        "noise": {0: batch, 1: draws},
    }
    if wrapper.stochastic:
        example = (*example, torch.zeros(b, s, int(steps), *net.noise_shape, device=device))
        dynamic["step_noise"] = {0: batch, 1: draws}
    with torch.no_grad():
        program = torch.export.export(wrapper, example, dynamic_shapes=dynamic)
    level = getattr(net, "level", None)
    metadata = {
        "sampler": sampler,
        "steps": int(steps),
        "stochastic": wrapper.stochastic,
        "physical": bool(physical),
        "max_jets": int(max_jets),
        "noise_shape": [int(n) for n in net.noise_shape],
        "object_features": int(enc.in_features),
        "global_features": int(enc.global_features),
        "level": getattr(level, "name", "parton"),
        "variable_length": wrapper.variable,
        "target_shape": [int(n) for n in net.target_shape],
        "outputs": ["values", "mask", "n_objects", "types"] if wrapper.variable else ["values"],
    }
    log.info("exported %s sampler with %d steps (physical=%s)", sampler, steps, physical)
    if path is not None:
        torch.export.save(program, path, extra_files={_METADATA: json.dumps(metadata)})
    return program


def load_exported(
    path: str | os.PathLike[str],
) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """``(program, metadata)`` of a file written by :func:`export_sampler` (``path=``)."""
    extra = {_METADATA: ""}
    program = torch.export.load(path, extra_files=extra)
    return program, json.loads(extra[_METADATA] or "{}")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Only the settings (sampler, steps, noise_shape, max_jets, ...) of a saved program."""
    return load_exported(path)[1]


def _make_torch_wrapper() -> type:
    from coffea.ml_tools.torch_wrapper import torch_wrapper

    class VLDTorchWrapper(torch_wrapper):
        """``coffea.ml_tools.torch_wrapper`` for a program saved by :func:`export_sampler`.

        ``wrapper(events)`` -> draws for already *selected* NanoAOD-like events, with the
        per-event reproducible noise of :func:`hepvld.api.event_noise` (and, for ``ddpm``,
        :func:`hepvld.api.step_noise`), so they equal :func:`hepvld.unfold`'s ``raw``
        (and ``raw_mask``): ``(B, S, K * H)`` for a fixed level; for a variable-length
        level one record array with fields ``values (B, S, K * H)``, ``mask (B, S, K)``,
        ``n_objects (B, S)``, ``types (B, S, K - 1)`` (module docstring).

        Parameters
        ----------
        path
            The ``.pt2`` file (must be readable on the workers).
        n_samples
            Draws ``S`` per event.
        seed
            Noise seed (draws depend only on ``(seed, event number)``).
        """

        def __init__(
            self, path: str | os.PathLike[str], *, n_samples: int = 10, seed: int = 0
        ) -> None:
            super().__init__(os.fspath(path), expected_output_shape=None)
            meta = read_metadata(path)
            if not meta.get("physical", False):
                raise ValueError("VLDTorchWrapper needs a program exported with physical=True")
            self.n_samples, self.seed = int(n_samples), int(seed)
            self.max_jets = int(meta["max_jets"])
            # programs exported before noise_shape existed store noise_dim
            shape = meta["noise_shape"] if "noise_shape" in meta else [meta["noise_dim"]]
            self.noise_shape = tuple(int(n) for n in shape)
            self.steps = int(meta.get("steps", 0))
            self.stochastic = bool(meta.get("stochastic", False))
            self.outputs = list(meta.get("outputs", ["values"]))

        def validate_numpy_input(self, *args: np.ndarray, **kwargs: np.ndarray) -> None:
            objects, mask, glob, noise = args[:4]
            n = 1 + self.max_jets
            shape = (objects.shape[0], self.n_samples, *self.noise_shape)
            step = (*shape[:2], self.steps, *shape[2:])
            if (
                objects.ndim != 3
                or objects.shape[1] != n
                or mask.shape != objects.shape[:2]
                or glob.shape[0] != objects.shape[0]
                or noise.shape != shape
                or len(args) != 4 + self.stochastic
                or (self.stochastic and args[4].shape != step)
            ):
                raise ValueError(
                    f"unexpected input shapes {[a.shape for a in args]} (N = {n}, "
                    f"S = {self.n_samples}, noise {self.noise_shape}"
                    + (f", step noise {step[1:]})" if self.stochastic else ")")
                )

        def _create_model(self) -> Any:
            return load_exported(self.torch_jit)[0].module().to(self.device)

        def numpy_call(self, *args: np.ndarray, **kwargs: np.ndarray) -> Any:
            """The program on numpy inputs: an array (fixed level) or, for a program with
            several outputs, an awkward record array of them (one per event)."""
            if len(self.outputs) == 1:
                return super().numpy_call(*args, **kwargs)
            import awkward as ak

            inputs = [torch.from_numpy(np.array(a)).to(self.device) for a in args]
            with torch.no_grad():
                result = self.model(*inputs)
            arrays = {
                name: ak.from_numpy(t.detach().cpu().numpy())
                for name, t in zip(self.outputs, result, strict=True)
            }
            return ak.zip(arrays, depth_limit=1)

        def prepare_awkward(self, events: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            import awkward as ak

            from hepvld.api import event_noise, step_noise
            from hepvld.features import detector_tensors
            from hepvld.io import open_events

            events = open_events(events)
            det = detector_tensors(events, max_jets=self.max_jets)
            numbers = np.asarray(ak.to_numpy(events["event"]), dtype=np.uint64)
            shape = (self.n_samples, *self.noise_shape)
            noise = event_noise(self.seed, numbers, shape).numpy()
            args: tuple[np.ndarray, ...] = (det.objects, det.mask, det.globals, noise)
            if self.stochastic:
                per_step = step_noise(self.seed, numbers)
                full = (len(numbers), *shape)
                steps = [per_step(i, full).numpy() for i in range(self.steps)]
                stacked = np.stack(steps, axis=2) if steps else np.zeros((*full[:2], 0, *shape[1:]))
                args = (*args, stacked.astype(np.float32))
            return tuple(ak.from_numpy(np.ascontiguousarray(a)) for a in args), {}

    VLDTorchWrapper.__module__ = __name__
    VLDTorchWrapper.__qualname__ = "VLDTorchWrapper"
    return VLDTorchWrapper


def __getattr__(name: str) -> Any:
    if name == "VLDTorchWrapper":
        cls = _make_torch_wrapper()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
