"""The analysis API: ``hepvld.load`` a trained model, ``hepvld.unfold`` events with it."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from hepvld.targets import TargetLevel, level_from_meta

if TYPE_CHECKING:
    import torch

    from hepvld.diffusion.samplers import SamplerSpec

__all__ = ["UnfoldingModel", "event_noise", "load", "sampler_spec", "step_noise", "unfold"]

log = logging.getLogger(__name__)


def event_noise(seed: int, events: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard-normal noise that depends only on ``(seed, event number)``.

    Parameters
    ----------
    seed
        User seed.
    events : (B,) integer
        Event numbers.
    shape
        Per-event shape, e.g. ``(S, D)``.

    Returns
    -------
    Tensor (B, *shape), float32
        Row ``i`` is the same whatever other events share the batch, so unfolding is
        independent of chunking.
    """
    import torch

    from hepvld.data import splitmix64

    seed_key = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    with np.errstate(over="ignore"):
        keys = splitmix64(np.asarray(events, dtype=np.uint64) ^ seed_key)
    out = torch.empty((len(keys), *shape))
    gen = torch.Generator()
    for i, key in enumerate(keys.tolist()):
        gen.manual_seed(key & ((1 << 63) - 1))
        out[i] = torch.randn(shape, generator=gen)
    return out


@dataclass
class UnfoldingModel:
    """A trained network with its metadata: everything needed to unfold.

    Create with :func:`load`. ``model`` is an ``nn.Module`` following the model contract
    (``unfold(objects, mask, globals, n_samples=..., ...) -> Draws`` in physical units: the
    detector and target normalisations are buffers inside it); ``meta`` is the checkpoint's
    ``extra`` metadata (model name, target level, preprocessing states, ...).
    """

    model: Any
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Registered model name (``vld``, ``uc-vld``, ...)."""
        return str(self.meta.get("model", "unknown"))

    @property
    def level(self) -> TargetLevel:
        """The target level the model unfolds to (:mod:`hepvld.targets`)."""
        return getattr(self.model, "level", None) or level_from_meta(self.meta)

    @property
    def max_jets(self) -> int:
        """Jets kept per event by the detector features the model was trained on."""
        return int(self.meta.get("max_jets", 20))

    @property
    def detector_preprocessor(self) -> Any:
        """The fitted :class:`~hepvld.features.DetectorPreprocessor` (from the metadata)."""
        from hepvld.features import DetectorPreprocessor

        return DetectorPreprocessor.from_state_dict(self.meta["detector_preprocessor"])

    @property
    def target_preprocessor(self) -> Any:
        """The level's fitted target preprocessing (from the metadata)."""
        return self.level.preprocessing(self.meta["target_preprocessor"])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str) -> UnfoldingModel:
        """Move the network to ``device`` (in place) and return ``self``."""
        self.model.to(device)
        return self


def load(checkpoint: str | PathLike[str], *, device: str = "cpu") -> UnfoldingModel:
    """Load a trained model from a run directory or checkpoint path (no unpickling).

    Parameters
    ----------
    checkpoint
        A run directory written by ``python -m hepvld.train`` (its latest checkpoint is
        used) or a checkpoint directory inside it.
    device
        Where to put the network.
    """
    from hepvld.models.rebuild import load_network

    net, meta = load_network(Path(checkpoint), device=device)
    return UnfoldingModel(net, meta)


def step_noise(seed: int, events: np.ndarray) -> Callable[[int, tuple[int, ...]], torch.Tensor]:
    """Per-step noise of a stochastic sampler keyed by ``(seed, step, event number)``.

    Returns ``noise(step, shape=(B, S, ...)) -> Tensor`` whose row ``i`` depends only on
    the seed, the step and ``events[i]``: ``ddpm`` draws are then reproducible per event
    whatever the batching, like the deterministic samplers'.
    """

    def noise(step: int, shape: tuple[int, ...]) -> torch.Tensor:
        salted = (seed * 0x9E3779B1 + 1 + step) & 0xFFFFFFFFFFFFFFFF
        return event_noise(salted, events, tuple(shape[1:]))

    return noise


def sampler_spec(
    sampler: str | SamplerSpec, steps: int | None, *, default_steps: int = 50
) -> SamplerSpec:
    """``sampler`` as a :class:`~hepvld.diffusion.SamplerSpec` (a name takes ``steps``,
    ``default_steps`` when None; a spec is used as it is, ``steps`` must be None or equal)."""
    from hepvld.diffusion.samplers import SamplerSpec

    if isinstance(sampler, SamplerSpec):
        if steps is not None and steps != sampler.steps:
            raise ValueError(f"steps={steps} contradicts {sampler}")
        return sampler
    return SamplerSpec(str(sampler), default_steps if steps is None else int(steps))


def _as_unfolding_model(
    model: UnfoldingModel | str | PathLike[str], device: str | None
) -> UnfoldingModel:
    if isinstance(model, UnfoldingModel):
        return model.to(device) if device is not None else model
    return load(model, device=device or "cpu")


def _expand_to_events(array: ak.Array, mask: np.ndarray) -> ak.Array:
    """Place the rows of ``array`` (one per selected event) at the ``True`` slots of
    ``mask (B,)``; the other events get ``None``."""
    index = np.full(len(mask), -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    layout = ak.contents.IndexedOptionArray(ak.index.Index64(index), ak.to_layout(array))
    return ak.Array(layout, behavior=array.behavior)


def unfold(
    events: Any,
    *,
    model: UnfoldingModel | str | PathLike[str],
    n_samples: int = 100,
    sampler: str | SamplerSpec = "dpmpp2m",
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | None = None,
    raw: bool = False,
    progress: bool | None = None,
    tree: str = "Events",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    on_nonfinite: str = "raise",
    on_duplicate: str = "raise",
) -> ak.Array:
    """Posterior samples of the model's target level for every event (the 11 partons, or
    the variable-length particle-level objects and event vector).

    Parameters
    ----------
    events
        An awkward/coffea events array (NanoAOD-like collections ``Jet``, ``Electron``,
        ``Muon``, ``MET``, or flat branches ``Jet_pt``, ... as read by uproot), a dict of
        such branches, or a ROOT file path / list of paths (tree ``tree``); see
        :func:`hepvld.io.open_events`.
    model
        A :class:`UnfoldingModel` from :func:`load`, or a checkpoint path.
    n_samples
        Posterior draws ``S`` per event.
    sampler, steps
        A :class:`~hepvld.diffusion.SamplerSpec`, or a sampler name (``ddpm``, ``ddim``,
        ``pndm``, ``dpmpp2m``, or ``distilled``: the run's student of ``hepvld distill``
        with that many steps, ``RUN/distilled/steps-N``) with its number of steps (default 50).
    batch_size
        Events per network call (``batch_size * n_samples`` draws at once); default:
        :func:`hepvld.runtime.auto_batch_size` for the device.
    seed
        Draws depend only on ``(seed, event number)``, whatever the chunking, for every
        sampler: the initial noise and ``ddpm``'s per-step noise are keyed per event.
    device
        ``cpu``/``cuda``; default: where the model is.
    raw
        Also return the physical target values of each draw, flattened, as field ``raw``
        with shape ``(B, S, K * H)`` (the 55-vectors at parton level); a level without fixed
        multiplicity adds the draws' slot mask as field ``raw_mask (B, S, K)``.
    progress
        Show a progress bar (default: when there is more than one batch).
    entry_start, entry_stop
        Unfold only these input entries (Python slice semantics, over all files).
    on_nonfinite, on_duplicate
        Input validation policies of :func:`hepvld.io.open_events` (``"raise"`` by
        default; ``on_nonfinite="drop"`` drops events with NaN/inf or impossible values,
        logged with counts). Event numbers must be unique (the noise is keyed on them).

    Raises
    ------
    hepvld.io.HepvldIOError
        Bad input (named in the message), or :class:`~hepvld.io.NonFiniteDrawError` when
        the model produces NaN/inf draws.

    Returns
    -------
    ak.Array
        Length ``B`` (one entry per input event). Events that pass the hepvld selection
        hold the level's record (parton level: one field per parton, ``b_lep`` ...
        ``ttbar``, each an ``(S,)`` list of ``Momentum4D`` vectors; particle level: an
        ``(S,)`` list of draws, each ``{"objects": var * Momentum4D with an int8 type,
        "event": {met, met_phi, nu}}``, :func:`hepvld.targets.particle_output.to_records`;
        and ``raw`` on request); events that fail it are ``None`` (their number and the reasons are
        logged and kept in ``result.attrs["cutflow"]``).
    """
    import torch

    from hepvld.features import detector_tensors, select
    from hepvld.io import check_unique_events, open_events
    from hepvld.io.output import check_finite_draws

    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    spec = sampler_spec(sampler, steps)
    um = _as_unfolding_model(model, device)
    net = um.model
    net.eval()
    dev = um.device
    level = um.level
    if batch_size is None:
        from hepvld.runtime import auto_batch_size

        batch_size = auto_batch_size(n_samples, model=net, device=dev)

    events = open_events(
        events,
        tree=tree,
        entry_start=entry_start,
        entry_stop=entry_stop,
        on_nonfinite=on_nonfinite,  # type: ignore[arg-type]
        on_duplicate=on_duplicate,  # type: ignore[arg-type]
    )
    mask, cutflow = select(events, require_truth=False)
    mask = np.asarray(mask, dtype=bool)
    n_fail = int((~mask).sum())
    if len(mask) and not mask.any():
        log.warning("unfold: none of the %d events passes the selection\n%s", len(mask), cutflow)
    elif n_fail:
        log.info(
            "unfold: %d of %d events fail the selection and are returned as None\n%s",
            n_fail,
            len(mask),
            cutflow,
        )
    selected = events[mask]
    det = detector_tensors(selected, max_jets=um.max_jets)
    if "event" in ak.fields(selected):
        numbers = ak.to_numpy(selected["event"]).astype(np.uint64)
    else:
        numbers = np.flatnonzero(mask).astype(np.uint64)
    check_unique_events(numbers, "unfold input", raise_error=on_duplicate == "raise")

    n = len(numbers)
    n_batches = math.ceil(n / batch_size)
    show = n_batches > 1 if progress is None else progress
    generator = torch.Generator(device=dev).manual_seed(seed)
    values: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    batches = range(n_batches)
    if show:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="unfold", unit="batch")
    for b in batches:
        sl = slice(b * batch_size, (b + 1) * batch_size)
        noise = event_noise(seed, numbers[sl], (n_samples, *net.noise_shape)).to(dev)
        draws = net.unfold(
            torch.as_tensor(det.objects[sl], device=dev),
            torch.as_tensor(det.mask[sl], device=dev),
            torch.as_tensor(det.globals[sl], device=dev),
            n_samples=n_samples,
            sampler=spec,
            generator=generator,
            noise=noise,
            step_noise=step_noise(seed, numbers[sl]) if spec.stochastic else None,
        )
        values.append(draws.values.float().cpu().numpy())
        masks.append(draws.mask.cpu().numpy())
    shape = (0, n_samples, *level.shape)
    x = np.concatenate(values) if values else np.zeros(shape, np.float32)
    m = np.concatenate(masks) if masks else np.zeros(shape[:-1], bool)
    check_finite_draws(np.where(m[..., None], x, 0.0), numbers)

    records = level.to_records(x, m)
    if raw:
        flat = x.reshape(*x.shape[:2], int(np.prod(x.shape[2:]))).astype(np.float32)
        records = ak.with_field(records, ak.from_numpy(flat), "raw")
        if not level.fixed_multiplicity:
            records = ak.with_field(records, ak.from_numpy(m), "raw_mask")
    out = _expand_to_events(records, mask)
    out.attrs["cutflow"] = cutflow
    return out
