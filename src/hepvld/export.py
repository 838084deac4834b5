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
units when ``physical=True``) plus the explicit initial noise ``noise (B, S, *noise_shape)``
(:func:`hepvld.api.event_noise` gives the per-event reproducible one). The batch ``B``
(including 0) and the number of draws ``S`` (≥ 1) are dynamic. With the same noise the
program reproduces :meth:`hepvld.models.vld.VLD.sample` (``physical=False``, values
flattened per draw) or :func:`hepvld.unfold` (``physical=True``, ``raw`` field) exactly.
A program of a fixed-multiplicity level only: a variable level's draws also need their
mask as an output (not done yet).

:class:`VLDTorchWrapper` (a ``coffea.ml_tools.torch_wrapper`` loading the ``.pt2`` with
``torch.export.load`` instead of ``torch.jit.load``) is created on first access, so that
importing this module does not import coffea.
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
    """``(objects, mask, globals, noise) -> draws (B, S, K * H)`` with a fixed sampler.

    Parameters
    ----------
    model
        A network following the model contract (``sample``/``unfold`` with ``noise=``),
        e.g. a :class:`~hepvld.models.vld.VLD`.
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

    def forward(self, objects: Tensor, mask: Tensor, globals: Tensor, noise: Tensor) -> Tensor:
        """Posterior draws.

        Parameters
        ----------
        objects : (B, N, F) float32
        mask : (B, N) bool
        globals : (B, G) float32
        noise : (B, S, *noise_shape) float32
            Initial noise (``model.noise_shape``).

        Returns
        -------
        Tensor (B, S, K * H)
            Each draw's target values, flattened (the 55-vector at parton level; the
            ``raw`` field of :func:`hepvld.unfold`).
        """
        call = self.model.unfold if self.physical else self.model.sample
        draws = call(
            objects, mask, globals, n_samples=noise.shape[1], sampler=self.spec, noise=noise
        )
        return draws.values.flatten(2)


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
        network (then ``physical`` must be False and ``max_jets`` given).
    sampler, steps
        Frozen into the program (the loop is unrolled: program size grows with steps).
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
        Call ``.module()(objects, mask, globals, noise)``; batch ``B`` may be 0.
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
    level = getattr(net, "level", None)
    if level is not None and not level.fixed_multiplicity:
        raise ValueError(
            f"export_sampler: the {level.name!r} target level has a varying multiplicity; "
            "an exported program returns a fixed-size vector per draw and cannot carry the "
            "slot mask yet. Unfold with hepvld.unfold (or the network's unfold) instead."
        )
    wrapper = ExportableSampler(net, sampler=sampler, steps=steps, physical=physical).eval()
    enc = net.detector_encoder
    device = next(net.parameters()).device
    b, n, s = 2, 1 + int(max_jets), 2
    example = (
        torch.zeros(b, n, enc.in_features, device=device),
        torch.ones(b, n, dtype=torch.bool, device=device),
        torch.zeros(b, enc.global_features, device=device),
        torch.zeros(b, s, *net.noise_shape, device=device),
    )
    batch = torch.export.Dim("batch", min=0)
    draws = torch.export.Dim("draws", min=1)
    dynamic = {
        "objects": {0: batch},
        "mask": {0: batch},
        "globals": {0: batch},
        "noise": {0: batch, 1: draws},
    }
    with torch.no_grad():
        program = torch.export.export(wrapper, example, dynamic_shapes=dynamic)
    metadata = {
        "sampler": sampler,
        "steps": int(steps),
        "physical": bool(physical),
        "max_jets": int(max_jets),
        "noise_shape": [int(n) for n in net.noise_shape],
        "object_features": int(enc.in_features),
        "global_features": int(enc.global_features),
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

        ``wrapper(events)`` -> ``(B, S, K * H)`` draws for already *selected* NanoAOD-like
        events, with the per-event reproducible noise of :func:`hepvld.api.event_noise`.

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

        def validate_numpy_input(self, *args: np.ndarray, **kwargs: np.ndarray) -> None:
            objects, mask, glob, noise = args
            n = 1 + self.max_jets
            if (
                objects.ndim != 3
                or objects.shape[1] != n
                or mask.shape != objects.shape[:2]
                or glob.shape[0] != objects.shape[0]
                or noise.shape != (objects.shape[0], self.n_samples, *self.noise_shape)
            ):
                raise ValueError(
                    f"unexpected input shapes {[a.shape for a in args]} (N = {n}, "
                    f"S = {self.n_samples}, noise {self.noise_shape})"
                )

        def _create_model(self) -> Any:
            return load_exported(self.torch_jit)[0].module().to(self.device)

        def prepare_awkward(self, events: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            import awkward as ak

            from hepvld.api import event_noise
            from hepvld.features import detector_tensors
            from hepvld.io import open_events

            events = open_events(events)
            det = detector_tensors(events, max_jets=self.max_jets)
            numbers = np.asarray(ak.to_numpy(events["event"]), dtype=np.uint64)
            noise = event_noise(self.seed, numbers, (self.n_samples, *self.noise_shape)).numpy()
            args = (det.objects, det.mask, det.globals, noise)
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
