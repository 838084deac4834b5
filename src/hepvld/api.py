"""The analysis API: ``hepvld.load`` a trained model, ``hepvld.unfold`` events with it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["UnfoldingModel", "event_noise", "load", "unfold"]

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
    """A trained model with everything needed to unfold: network, preprocessing, metadata.

    Create with :func:`load`. ``model`` is an ``nn.Module`` following the model contract
    (``sample(objects, mask, globals, n_samples=..., ...) -> (B, S, X)``).
    """

    model: Any
    detector_preprocessor: Any
    target_preprocessor: Any
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Registered model name (``vld``, ``uc-vld``, ...)."""
        return str(self.meta.get("model", "unknown"))

    @property
    def max_jets(self) -> int:
        """Jets kept per event by the detector features the model was trained on."""
        return int(self.meta.get("max_jets", 20))

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
    import torch

    from hepvld.features import DetectorPreprocessor, TargetPreprocessor
    from hepvld.models import ModelConfig, build_model
    from hepvld.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(Path(checkpoint))
    meta = ckpt.meta.get("extra", ckpt.meta)
    target_pre = TargetPreprocessor.from_state_dict(meta["target_preprocessor"])
    detector_pre = DetectorPreprocessor.from_state_dict(meta["detector_preprocessor"])
    shift, scale = target_pre.mean, target_pre.scale
    model = build_model(
        meta["model"],
        ModelConfig.from_dict(meta["model_config"]),
        object_features=int(meta["object_features"]),
        global_features=int(meta["global_features"]),
        target_dim=int(meta["target_dim"]),
        target_shift=torch.as_tensor(shift, dtype=torch.float32),
        target_scale=torch.as_tensor(scale, dtype=torch.float32),
    )
    state = ckpt.ema_state if ckpt.ema_state is not None else ckpt.model_state
    model.load_state_dict(state)
    model.eval().to(device)
    return UnfoldingModel(model, detector_pre, target_pre, {**meta, "step": ckpt.meta.get("step")})


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
    sampler: str = "dpmpp2m",
    steps: int = 50,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | None = None,
    raw: bool = False,
    progress: bool | None = None,
    tree: str = "Events",
) -> ak.Array:
    """Posterior samples of the 11 partons for every event.

    Parameters
    ----------
    events
        An awkward/coffea events array (NanoAOD-like collections ``Jet``, ``Electron``,
        ``Muon``, ``MET``), or a ROOT file path / list of paths (tree ``tree``).
    model
        A :class:`UnfoldingModel` from :func:`load`, or a checkpoint path.
    n_samples
        Posterior draws ``S`` per event.
    sampler, steps
        Sampler name (``ddpm``, ``ddim``, ``pndm``, ``dpmpp2m``) and number of steps.
    batch_size
        Events per network call (``batch_size * n_samples`` draws at once); default:
        :func:`hepvld.runtime.auto_batch_size` for the device.
    seed
        Draws depend only on ``(seed, event number)`` for the deterministic samplers
        (``ddim``, ``pndm``, ``dpmpp2m``), whatever the chunking; ``ddpm`` also draws
        fresh noise per step from a generator seeded by ``seed``.
    device
        ``cpu``/``cuda``; default: where the model is.
    raw
        Also return the physical 55-vectors as field ``raw`` with shape ``(B, S, 55)``.
    progress
        Show a progress bar (default: when there is more than one batch).

    Returns
    -------
    ak.Array
        Length ``B`` (one entry per input event). Events that pass the hepvld selection
        hold a record with one field per parton (``b_lep`` ... ``ttbar``), each an
        ``(S,)`` list of ``Momentum4D`` vectors (and ``raw``, ``(S, 55)``, on request); events that fail it are ``None``
        (their number and the reasons are logged and kept in ``result.attrs["cutflow"]``).
    """
    import torch

    from hepvld.features import detector_tensors, select
    from hepvld.io import open_events
    from hepvld.physics import targets_to_momenta

    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    um = _as_unfolding_model(model, device)
    net = um.model
    net.eval()
    dev = um.device
    if batch_size is None:
        from hepvld.runtime import auto_batch_size

        batch_size = auto_batch_size(n_samples, model=net, device=dev)

    events = open_events(events, tree=tree)
    mask, cutflow = select(events, require_truth=False)
    mask = np.asarray(mask, dtype=bool)
    n_fail = int((~mask).sum())
    if n_fail:
        log.info(
            "unfold: %d of %d events fail the selection and are returned as None\n%s",
            n_fail,
            len(mask),
            cutflow,
        )
    selected = events[mask]
    det = detector_tensors(selected, max_jets=um.max_jets)
    obj_mask = det.mask
    objects, glob = um.detector_preprocessor.transform(det.objects, det.mask, det.globals)
    if "event" in ak.fields(selected):
        numbers = ak.to_numpy(selected["event"]).astype(np.uint64)
    else:
        numbers = np.flatnonzero(mask).astype(np.uint64)

    n = len(numbers)
    n_batches = math.ceil(n / batch_size)
    show = n_batches > 1 if progress is None else progress
    generator = torch.Generator(device=dev).manual_seed(seed)
    results: list[np.ndarray] = []
    batches = range(n_batches)
    if show:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="unfold", unit="batch")
    for b in batches:
        sl = slice(b * batch_size, (b + 1) * batch_size)
        noise = event_noise(seed, numbers[sl], (n_samples, net.noise_dim)).to(dev)
        draws = net.sample(
            torch.as_tensor(objects[sl], device=dev),
            torch.as_tensor(obj_mask[sl], device=dev),
            torch.as_tensor(glob[sl], device=dev),
            n_samples=n_samples,
            sampler=sampler,
            steps=steps,
            generator=generator,
            noise=noise,
        )
        flat = draws.float().cpu().numpy().reshape(-1, draws.shape[-1])
        results.append(um.target_preprocessor.inverse_transform(flat).reshape(draws.shape))
    target_dim = int(um.meta.get("target_dim", 55))
    x = np.concatenate(results) if results else np.zeros((0, n_samples, target_dim), np.float32)

    partons = targets_to_momenta(x)
    if raw:
        partons = ak.with_field(partons, ak.from_numpy(x.astype(np.float32)), "raw")
    out = _expand_to_events(partons, mask)
    out.attrs["cutflow"] = cutflow
    return out
