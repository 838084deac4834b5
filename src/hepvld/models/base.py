"""What every unfolding model shares: the model I/O, the detector encoder and condition,
the normalisation buffers, the reconstruction + consistency terms and the ``sample``
contract.

A model family subclasses :class:`ConditionalGenerator` (or composes a diffusion
component, :class:`~hepvld.models.denoising.ConditionalDiffusion`) and implements
``loss`` and :meth:`ConditionalGenerator.generate` (noise and condition -> preprocessed
targets); ``sample`` and ``unfold`` (the contract of ``docs/architecture.md``) are
inherited.

Shapes: ``B`` events, ``N`` detector objects, ``F`` object features, ``G`` global
features, ``C`` condition size, target sets ``(K, H)`` (slots × features per slot of the
target level, ``(11, 5)`` at parton level; ``X = K * H`` flat), ``D`` latent size,
``S`` draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from hepvld.diffusion.samplers import SamplerSpec
from hepvld.models.config import ModelConfig
from hepvld.models.normalization import DetectorNormalizer
from hepvld.nn import GatedMLP, SetEncoder
from hepvld.targets import TargetLevel, get_level, model_shape
from hepvld.training.batches import Batch

__all__ = [
    "Batch",
    "Condition",
    "ConditionalGenerator",
    "Draws",
    "ModelIO",
    "StepNoise",
    "randn",
    "weighted_mean",
]


#: Per-step noise of a stochastic sampler for ``S`` draws of ``B`` events:
#: ``step_noise(step, shape=(B, S, *noise_shape)) -> Tensor``.
StepNoise = Callable[[int, tuple[int, ...]], Tensor]


def weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """Mean of ``values (B,)`` weighted by ``weights (B,)`` (plain mean if None)."""
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(torch.finfo(values.dtype).tiny)


def randn(
    like: Tensor, generator: torch.Generator | None, shape: torch.Size | None = None
) -> Tensor:
    """Standard normal noise of ``shape`` (default ``like.shape``), on ``like``'s device and dtype."""
    return torch.randn(
        like.shape if shape is None else shape,
        generator=generator,
        device=like.device,
        dtype=like.dtype,
    )


class Condition(NamedTuple):
    """The detector condition passed to a generator.

    Attributes
    ----------
    event : (B, C)
        Pooled event vector ``z_y``.
    tokens : (B, N, C)
        Per-object tokens of the set encoder (for cross-attention).
    mask : (B, N)
        True for real detector objects.
    """

    event: Tensor
    tokens: Tensor
    mask: Tensor

    def repeat_interleave(self, n: int) -> Condition:
        """Each event repeated ``n`` times along the batch axis (``B -> B * n``)."""
        return Condition(*(t.repeat_interleave(n, dim=0) for t in self))


class Draws(NamedTuple):
    """Posterior draws of a target set.

    Attributes
    ----------
    values : (B, S, K, H)
        Per-slot features (preprocessed or physical, as the producing call says).
    mask : (B, S, K)
        True for real slots (all true for a fixed-multiplicity level).
    """

    values: Tensor
    mask: Tensor


@dataclass(frozen=True)
class ModelIO:
    """What a network is built for: one value instead of six constructor arguments.

    Attributes
    ----------
    object_features, global_features
        Detector input sizes ``F`` and ``G``.
    level
        The target level (name or object, :mod:`hepvld.targets`).
    detector_preprocessing
        JSON state of :class:`hepvld.features.DetectorPreprocessor`: held as buffers
        (:class:`~hepvld.models.normalization.DetectorNormalizer`) so that
        :meth:`ConditionalGenerator.unfold` takes physical units; None: identity.
    target_shift, target_scale
        ``x_phys = x * scale + shift``, broadcastable to the level's ``(K, H)`` (a flat
        ``(X,)`` is reshaped); without them the consistency loss is off and
        :meth:`ConditionalGenerator.unfold` returns standardised values.
    """

    object_features: int
    global_features: int
    level: str | TargetLevel = "parton"
    detector_preprocessing: Mapping[str, Any] | None = None
    target_shift: Any = None
    target_scale: Any = None

    @property
    def target_level(self) -> TargetLevel:
        return get_level(self.level)


class ConditionalGenerator(nn.Module):
    """Base of every model: ``p(x | y)`` with ``y`` a detector event, ``x`` the targets.

    Holds the permutation-invariant detector encoder ``y -> (z_y (B, C), tokens (B, N, C))``
    (``C`` = ``config.dim``), the detector normalisation and the target affine map
    (buffers, saved with the weights).

    Parameters
    ----------
    config
        Hyper-parameters (see :class:`~hepvld.models.config.ModelConfig`).
    io
        Input sizes, target level and normalisations (:class:`ModelIO`).
    noise_shape
        Shape of the per-draw initial noise consumed by :meth:`sample`.
    """

    #: Registered name of the family (informative; the registry key is authoritative).
    name: ClassVar[str] = "base"
    #: The family generates a fixed-size flat vector (needs a fixed-multiplicity level).
    fixed_length: ClassVar[bool] = True

    target_shift: Tensor
    target_scale: Tensor

    def __init__(self, config: ModelConfig, io: ModelIO, *, noise_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.config = config
        self.level = io.target_level
        if self.fixed_length and not self.level.fixed_multiplicity:
            raise ValueError(
                f"model {self.name!r} generates a fixed-size vector; the target level "
                f"{self.level.name!r} has a varying multiplicity"
            )
        #: ``(K, H)`` of what the network generates (the level's ``shape``, or its
        #: ``model_shape`` under a parameterisation of its own) and the flat size ``X = K * H``.
        self.target_shape: tuple[int, int] = model_shape(self.level)
        self.target_dim = self.target_shape[0] * self.target_shape[1]
        #: Shape of the per-draw initial noise that :meth:`sample` consumes.
        self.noise_shape = tuple(int(n) for n in noise_shape)
        self.detector_encoder = SetEncoder(
            in_features=io.object_features,
            global_features=io.global_features,
            dim=config.dim,
            heads=config.heads,
            layers=config.encoder_layers,
            expansion=config.expansion,
            dropout=config.dropout,
        )
        self.detector_norm = DetectorNormalizer(
            io.object_features, io.global_features, io.detector_preprocessing
        )
        has_affine = io.target_shift is not None and io.target_scale is not None
        shape = self.target_shape
        shift = torch.zeros(shape) if io.target_shift is None else _as_set(io.target_shift, shape)
        scale = torch.ones(shape) if io.target_scale is None else _as_set(io.target_scale, shape)
        self.register_buffer("target_shift", shift)
        self.register_buffer("target_scale", scale)
        self.use_consistency = has_affine and config.consistency_weight > 0
        self._register_load_state_dict_pre_hook(self._upgrade_state)

    def _upgrade_state(self, state: dict[str, Tensor], prefix: str, *args: Any) -> None:
        """Read checkpoints of earlier versions: flat ``(X,)`` target buffers and no
        detector-normalisation buffers (the network then keeps those it was built with)."""
        for name in ("target_shift", "target_scale"):
            key = prefix + name
            if key in state and state[key].shape != getattr(self, name).shape:
                state[key] = state[key].reshape(getattr(self, name).shape)
        for name, buf in self.detector_norm.named_buffers():
            state.setdefault(f"{prefix}detector_norm.{name}", buf.detach().clone())

    # ------------------------------------------------------------------ building blocks
    @property
    def condition_dim(self) -> int:
        """Size ``C`` of the detector condition ``z_y``."""
        return self.config.dim

    def gated_mlp(self, in_dim: int, out_dim: int, n_blocks: int) -> GatedMLP:
        """A :class:`~hepvld.nn.GatedMLP` of this model's width, expansion and dropout."""
        c = self.config
        return GatedMLP(
            in_dim, out_dim, dim=c.dim, n_blocks=n_blocks, expansion=c.expansion, dropout=c.dropout
        )

    def condition(self, objects: Tensor, mask: Tensor, globals: Tensor) -> Condition:
        """Detector condition of preprocessed inputs.

        Parameters
        ----------
        objects : (B, N, F)
        mask : (B, N), True for real objects
        globals : (B, G)

        Returns
        -------
        Condition
            ``event (B, C)``, ``tokens (B, N, C)``, ``mask (B, N)``.
        """
        event, tokens = self.detector_encoder(objects, mask, globals)
        return Condition(event, tokens, mask)

    def flat_targets(self, batch: Batch) -> Tensor:
        """The batch's preprocessed targets as flat vectors ``(B, X)`` (fixed levels)."""
        x = batch["targets"]
        return x.flatten(1) if x.ndim == 3 else x

    def to_physical(self, x: Tensor) -> Tensor:
        """Preprocessed targets ``(..., K, H)`` -> physical units: the affine inverse, then
        the level's ``from_parameters`` when it has one (a decay-chain parameterisation
        decodes to the level's own ``shape`` there)."""
        x = x * self.target_scale + self.target_shift
        decode = getattr(self.level, "from_parameters", None)
        return x if decode is None else decode(x)

    def reconstruction_terms(self, x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Squared error and physics consistency of a prediction.

        Parameters
        ----------
        x_hat, x : (B, X)
            Prediction and truth, preprocessed, flat.

        Returns
        -------
        squared_error : (B,)
            ``||x_hat - x||^2`` (Gaussian log-likelihood up to constants).
        consistency : (B,)
            The level's consistency term of ``x_hat`` in physical units (parton level:
            ``sum_particles |M^2 - (E^2 - p^2)|`` in units of ``consistency_scale^2``);
            zeros when the consistency loss is off.
        """
        squared_error = (x_hat - x).square().sum(-1)
        if not self.use_consistency:
            return squared_error, torch.zeros_like(squared_error)
        physical = self.to_physical(x_hat.unflatten(-1, self.target_shape))
        consistency = self.level.consistency(physical, None, scale=self.config.consistency_scale)
        return squared_error, consistency

    @staticmethod
    def loss_dict(
        total: Tensor, terms: dict[str, Tensor], weights: Tensor | None
    ) -> dict[str, Tensor]:
        """``{"loss": weighted mean of total (B,), term: detached weighted mean of each (B,)}``."""
        out = {"loss": weighted_mean(total, weights)}
        out.update({k: weighted_mean(v, weights).detach() for k, v in terms.items()})
        return out

    # ------------------------------------------------------------------ contract
    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Training loss: ``loss`` (weighted scalar) plus logged terms. See subclasses."""
        raise NotImplementedError

    def generate(
        self,
        noise: Tensor,
        condition: Condition,
        *,
        sampler: SamplerSpec,
        generator: torch.Generator | None,
        step_noise: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Map initial noise ``(M, *noise_shape)`` and conditions (batch ``M``) to flat
        preprocessed targets ``(M, X)``.

        ``sampler`` is ignored by models that are not diffusion models; ``step_noise(step,
        z)`` (stochastic samplers) draws the per-step noise like ``z``.
        """
        raise NotImplementedError

    def generate_draws(
        self,
        noise: Tensor,
        condition: Condition,
        *,
        sampler: SamplerSpec,
        generator: torch.Generator | None,
        step_noise: Callable[[int, Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`generate` with the slots' mask: ``(values (M, X), mask (M, K) or None)``.

        A fixed-multiplicity family returns ``None`` (every slot real); a variable-length
        family overrides this to draw the multiplicity too. ``step_noise(step, z)`` gives
        the per-step noise of the whole ``noise_shape`` row (a family slices what it uses).
        """
        x = self.generate(
            noise, condition, sampler=sampler, generator=generator, step_noise=step_noise
        )
        return x, None

    @torch.no_grad()
    def sample(
        self,
        objects: Tensor,
        mask: Tensor,
        globals: Tensor,
        *,
        n_samples: int = 1,
        sampler: SamplerSpec | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        step_noise: StepNoise | None = None,
        **draw_options: Any,
    ) -> Draws:
        """Posterior draws of the preprocessed targets.

        Parameters
        ----------
        objects : (B, N, F)
        mask : (B, N)
        globals : (B, G)
            Preprocessed detector inputs.
        n_samples
            Draws ``S`` per event.
        sampler
            Sampler and steps (diffusion models; ignored by the others); default
            ``SamplerSpec()`` (``dpmpp2m``, 50 steps).
        generator
            Source of all noise not given in ``noise`` / ``step_noise``.
        noise : (B, S, *noise_shape), optional
            Initial noise. Deterministic samplers (and the non-diffusion models) then
            depend on nothing else: draws are reproducible per event whatever the batching.
        step_noise
            ``step_noise(step, (B, S, *noise_shape)) -> Tensor``: the per-step noise of a
            stochastic sampler (``ddpm``); keyed per event, it makes ``ddpm`` draws
            reproducible per event too.
        **draw_options
            Family-specific options passed to :meth:`generate_draws` (VL-VLD:
            ``multiplicity``, the head that draws the number of objects).

        Returns
        -------
        Draws
            ``values (B, S, K, H)``, ``mask (B, S, K)``.
        """
        spec = SamplerSpec() if sampler is None else sampler
        batch = objects.shape[0]
        expected = (batch, n_samples, *self.noise_shape)
        if noise is None:
            noise = torch.randn(
                expected, generator=generator, device=objects.device, dtype=objects.dtype
            )
        elif tuple(noise.shape) != expected:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {expected}")
        per_step = None
        if step_noise is not None:
            step_fn = step_noise

            def per_step(step: int, z: Tensor) -> Tensor:
                return step_fn(step, expected).to(z).flatten(0, 1)

        cond = self.condition(objects, mask, globals).repeat_interleave(n_samples)
        x, slot_mask = self.generate_draws(
            noise.flatten(0, 1),
            cond,
            sampler=spec,
            generator=generator,
            step_noise=per_step,
            **draw_options,
        )
        values = x.reshape(batch, n_samples, *self.target_shape)
        if slot_mask is None:
            return Draws(values, torch.ones(values.shape[:-1], dtype=torch.bool, device=x.device))
        return Draws(values, slot_mask.reshape(values.shape[:-1]))

    @torch.no_grad()
    def unfold(
        self,
        objects: Tensor,
        mask: Tensor,
        globals: Tensor,
        *,
        n_samples: int = 1,
        sampler: SamplerSpec | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        step_noise: StepNoise | None = None,
        **draw_options: Any,
    ) -> Draws:
        """:meth:`sample` in physical units: the network's own normalisation buffers map
        physical detector inputs in and the draws out (``values (B, S, K, H)``,
        :meth:`physical_draws`); ``draw_options`` as for :meth:`sample`."""
        objects, globals = self.detector_norm(objects, mask, globals)
        draws = self.sample(
            objects,
            mask,
            globals,
            n_samples=n_samples,
            sampler=sampler,
            generator=generator,
            noise=noise,
            step_noise=step_noise,
            **draw_options,
        )
        return self.physical_draws(draws)

    def physical_draws(self, draws: Draws) -> Draws:
        """Preprocessed draws -> physical ones (the level's parameterisation decoded)."""
        values = self.to_physical(draws.values)
        if values.shape[:-1] != draws.mask.shape:  # a parameterisation of another shape
            return Draws(
                values, torch.ones(values.shape[:-1], dtype=torch.bool, device=values.device)
            )
        return Draws(values, draws.mask)


def _as_set(x: Any, shape: tuple[int, int]) -> Tensor:
    """A shift/scale as a float32 tensor of the target-set ``shape`` (flat input reshaped)."""
    t = torch.as_tensor(x, dtype=torch.float32)
    if t.numel() == shape[0] * shape[1]:
        return t.reshape(shape).clone()
    return torch.broadcast_to(t, shape).clone()
