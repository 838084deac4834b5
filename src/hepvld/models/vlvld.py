r"""Variable-length latent variational diffusion (VL-VLD) at particle level.

Shmakov et al., "Full Event Particle-Level Unfolding with Variable-Length Latent
Variational Diffusion" (ML4Jets 2024, arXiv 2404.14332). The target is a padded set of
slots (:mod:`hepvld.targets.particle`): slot 0 the event vector, slots ``1 .. n`` the
objects ordered by true pT, a mask for the real ones. The model, trained jointly on one
loss:

* a permutation-invariant detector encoder ``y -> (z_y, tokens)`` (the shared one);
* a **set VAE**: a slot transformer encoder ``x (, y) -> q(z_k | x) = N(mu_k, s_k^2)``
  with one latent ``z_k`` of size ``D`` per slot (``|mu_k| = sqrt(D)``), and a slot
  transformer decoder ``z (, y) ->`` each slot's continuous vector and its type logits
  (the event slot has no type). The conditional variants (UC-VL-VLD: encoder; C-VL-VLD:
  encoder and decoder) cross-attend to the detector tokens;
* a **denoiser**: a slot transformer over the noisy latents with slot-position and time
  embeddings that cross-attends to the detector tokens (plus ``z_y`` as one token);
* a learned **noise schedule per slot** :math:`\gamma_k(t)` (slot embedding -> monotone
  network, exact :math:`\gamma_k'`; :class:`~hepvld.diffusion.SlotSchedule`);
* a **multiplicity predictor** ``p(n | z_y)`` (:mod:`hepvld.models.multiplicity`): both a
  rounded Gamma and a categorical head are trained, ``config.vlvld_multiplicity`` names
  the one that draws ``n`` (the other learns on a detached condition, for comparison);
* a **type-composition head** ``p(n_b, n_e, n_mu | n, z_y)``
  (:mod:`hepvld.models.composition`), so that a draw's types are drawn together
  (``config.vlvld_types = "joint"``, the default) instead of slot by slot
  (``"independent"``: each slot's argmax; the head then trains on a detached condition).

Loss per event (summed over real slots ``k <= n`` only; the talk's eq. 12)::

    L = sum_k KL(q(z_1,k | z_k) || N(0, I))                        prior
      + [-log N(x_k; dec_k, sigma^2) + CE(type_k)]                  reconstruction
      + lambda_C * consistency(dec, mask)                           the level's term
      + sum_k KL(q(z_k | x) || p(z_k | z_0,k))                      vae
      + 1/2 sum_k gamma_k'(t) ||eps_k - eps_hat_k||^2               diffusion
      + lambda_N * (-log p(n | z_y))                                multiplicity
      + lambda_T * (-log p(n_b, n_e, n_mu | n, z_y))                composition
      + lambda_W * sum_c rho((m_c(dec) - m_c(x)) / s_W)             candidate

The candidate term (``config.vlvld_candidate_weight`` = lambda_W, default 0: off) compares
the masses of the pseudo-top candidates ``c = W_had, W_lep, t_had, t_lep`` of the decoder
output and of the truth, both built from the same slots: those of the pseudo-top
assignment of the *true* particle level (:meth:`ParticleLevel.candidate_slots
<hepvld.targets.particle.ParticleLevel.candidate_slots>`, computed once when the data are
loaded, the batch's ``candidate_slots (B, 5)``; not a parton match), in units of
``config.vlvld_candidate_scale`` (10 GeV), through the pseudo-Huber
``rho(d) = 2 (sqrt(1 + d^2) - 1)`` (``d^2`` near 0, ``2 |d|`` far: an untrained decoder's
candidates, 50–100 GeV off, do not swamp the other terms). Against the truth's own
candidate masses, not the W / top pole masses: the true particle-level candidates are
spread by the jets' resolution (widths 9–20 GeV, benchmarks/README.md), and a pole-mass
penalty would pull the draws narrower than the truth; this one is zero at the truth and
conditions on nothing but the event's own objects. Events without a true pseudo-top
contribute 0.

Sampling draws ``n`` first (inverse CDF at ``Phi(noise[..., K, 0])``: the last row of the
initial noise ``(K + 1, D)`` is the multiplicity's), then the ``n + 1`` slots with any
registered sampler on the per-slot schedule, and decodes. With ``vlvld_types = "joint"``
``n`` is drawn from ``p(n | z_y)`` restricted to the multiplicities the level's phase space
allows (:meth:`~hepvld.targets.particle.ParticleLevel.composition_support`: in the
``detector`` phase space one lepton, ≥ 4 jets, ≥ 2 b-jets), the composition from
``p(n_b, n_e, n_mu | n, z_y)`` restricted the same way (inverse CDF at
``Phi(noise[..., K, 1])``; for ``D = 1`` the residual of the multiplicity's uniform), and
the decoded slots are typed by :func:`~hepvld.models.composition.assign_types` under that
composition, so every draw's type composition lies inside the phase space. Draws depend
only on the initial (and, for ``ddpm``, per-step) noise, so :func:`hepvld.unfold` draws
are reproducible per ``(seed, event number)``.

Registered as ``vl-vld`` (unconditional VAE), ``uc-vl-vld`` and ``c-vl-vld``
(``config.variant`` ``vld`` / ``uc-vld`` / ``c-vld``), all on the ``particle`` level.

Shapes: ``B`` events, ``N`` detector objects, ``C`` condition size, ``K`` slots
(``1 + max_objects``), ``H`` features per slot, ``D`` latent size per slot, ``S`` draws,
``M = B * S``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hepvld.diffusion import (
    SAMPLERS,
    SamplerSpec,
    SlotSchedule,
    alpha_sigma_from_gamma,
    gaussian_kl,
    sample_times,
    timesteps,
)
from hepvld.models.base import (
    Batch,
    Condition,
    ConditionalGenerator,
    Draws,
    ModelIO,
    randn,
)
from hepvld.models.composition import CompositionHead, assign_types, inverse_cdf
from hepvld.models.config import ModelConfig
from hepvld.models.multiplicity import KINDS, MultiplicityHead
from hepvld.models.registry import register
from hepvld.nn import SinusoidalEmbedding, SlotTransformer

__all__ = ["FAMILY_VARIANTS", "VLVLD"]

log = logging.getLogger(__name__)

#: Registered VL-VLD names -> ``ModelConfig.variant`` (which VAE parts see the detector).
FAMILY_VARIANTS: dict[str, str] = {"vl-vld": "vld", "uc-vl-vld": "uc-vld", "c-vl-vld": "c-vld"}


def _scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` forward; its gradient multiplied by ``scale`` backward."""
    if scale == 1.0:
        return x
    return x.detach() + scale * (x - x.detach())


def _embedding(in_dim: int, dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))


class VLVLD(ConditionalGenerator):
    """Variable-length latent variational diffusion over a padded slot set.

    Parameters
    ----------
    config
        Hyper-parameters (``dim``, ``heads``, ``vae_encoder_blocks`` / ``vae_decoder_blocks``
        / ``denoiser_blocks`` as transformer layers, ``vlvld_*``; see
        :class:`~hepvld.models.config.ModelConfig`).
    io
        Detector sizes, target level (a variable-multiplicity level with an event slot:
        ``n_event_features``, ``n_continuous``, ``n_types``) and normalisations.
    """

    name = "vl-vld"
    fixed_length = False
    composition: CompositionHead
    composition_allowed: Tensor  # (K, O) bool: the compositions a draw may have per n

    def __init__(self, config: ModelConfig, io: ModelIO) -> None:
        level = io.target_level
        slots, features = (int(v) for v in level.shape)
        latent = config.vlvld_latent_dim
        super().__init__(config, io, noise_shape=(slots + 1, latent))
        self.n_slots = slots
        self.latent_dim = latent
        self.n_event = int(getattr(level, "n_event_features", 7))
        self.n_continuous = int(getattr(level, "n_continuous", 5))
        self.n_types = int(getattr(level, "n_types", 4))
        n_object = self.n_continuous + self.n_types
        if slots < 2 or self.n_event > features or n_object > features:
            raise ValueError(
                f"VL-VLD needs an event slot and object slots with {self.n_event} event and "
                f"{n_object} object features; the level {level.name!r} has shape {level.shape}"
            )
        c, dim = config, config.dim

        def transformer(layers: int, cross: bool) -> SlotTransformer:
            return SlotTransformer(dim, c.heads, layers, c.expansion, c.dropout, cross=cross)

        # set VAE
        self.event_embedding = _embedding(self.n_event, dim)
        self.object_embedding = _embedding(n_object, dim)
        self.encoder_slots = nn.Parameter(0.02 * torch.randn(slots, dim))
        self.vae_encoder = transformer(c.vae_encoder_blocks, c.conditional_encoder)
        self.encoder_out = nn.Linear(dim, 2 * latent)
        self.decoder_in = nn.Linear(latent, dim)
        self.decoder_slots = nn.Parameter(0.02 * torch.randn(slots, dim))
        self.vae_decoder = transformer(c.vae_decoder_blocks, c.conditional_decoder)
        self.event_out = nn.Linear(dim, self.n_event)
        self.object_out = nn.Linear(dim, n_object)
        # learned log std of the continuous likelihood: event features, then object ones
        self.decoder_log_scale = nn.Parameter(
            torch.full((self.n_event + self.n_continuous,), -0.5 * math.log(2.0)),
            requires_grad=c.learn_decoder_scale,
        )
        # denoiser
        self.time_embedding = SinusoidalEmbedding(c.time_embedding_dim)
        self.time_projection = _embedding(c.time_embedding_dim, dim)
        self.denoiser_in = nn.Linear(latent, dim)
        self.denoiser_slots = nn.Parameter(0.02 * torch.randn(slots, dim))
        self.denoiser = transformer(c.denoiser_blocks, True)
        self.denoiser_out = nn.Linear(dim, latent)
        self.schedule = SlotSchedule(
            slots,
            gamma_min=c.gamma_min,
            gamma_max=c.gamma_max,
            hidden=c.vlvld_schedule_hidden,
            learn_gamma_0=c.vlvld_learn_gamma_0,
        )
        self.multiplicity = nn.ModuleDict(
            {kind: MultiplicityHead(self.condition_dim, slots - 1, kind) for kind in KINDS}
        )
        self.composition = CompositionHead(self.condition_dim, slots - 1)
        self.register_buffer(
            "composition_allowed", self._composition_support(level), persistent=False
        )
        #: How draws are typed: ``config.vlvld_types``, or ``"independent"`` for a
        #: checkpoint without the composition head (see :meth:`_upgrade_composition`).
        self.types: str = c.vlvld_types
        self._register_load_state_dict_pre_hook(self._upgrade_composition)
        self._log_std_offset = 0.5 * c.gamma_min

    def _composition_support(self, level: Any) -> Tensor:
        """``(K, O)`` bool: the compositions a draw may have for each ``n`` (the level's
        ``composition_support`` if it has one, else every feasible one)."""
        feasible = self.composition.feasible
        support = getattr(level, "composition_support", None)
        if support is None:
            return feasible.clone()
        table = torch.as_tensor(support(self.composition.max_leptons), dtype=torch.bool)
        allowed = table.reshape(feasible.shape) & feasible
        if not allowed.any():
            log.warning(
                "the level %r allows no type composition with %d object slots: drawing every "
                "feasible one",
                getattr(level, "name", level),
                feasible.shape[0] - 1,
            )
            return feasible.clone()
        return allowed

    def upgrade_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """``state`` of a checkpoint written before the composition head, completed (see
        :meth:`_upgrade_composition`); read by
        :func:`hepvld.training.checkpoint.load_state_checked` before its key check."""
        self._upgrade_composition(state, "")
        return state

    def _upgrade_composition(self, state: dict[str, Tensor], prefix: str, *args: Any) -> None:
        """Read checkpoints written before the composition head: its weights are kept as
        built and draws are typed slot by slot (``types = "independent"``), as they were."""
        own = self.composition.state_dict()
        if all(prefix + "composition." + k in state for k in own):
            return
        for key, value in own.items():
            state.setdefault(prefix + "composition." + key, value.detach().clone())
        if self.types != "independent":
            log.warning(
                "checkpoint without the type-composition head: draws are typed slot by slot "
                "(vlvld_types='independent'), as when it was trained"
            )
        self.types = "independent"

    # ------------------------------------------------------------------ parts
    @property
    def type_columns(self) -> slice:
        """Columns of the object slots holding the type (one-hot / logits)."""
        return slice(self.n_continuous, self.n_continuous + self.n_types)

    @staticmethod
    def context(condition: Condition) -> tuple[Tensor, Tensor]:
        """Cross-attention context: ``[z_y, tokens]`` ``(B, 1 + N, C)`` and its mask
        ``(B, 1 + N)`` (``z_y`` always attendable)."""
        tokens = torch.cat([condition.event.unsqueeze(1), condition.tokens], dim=1)
        mask = torch.cat([condition.mask.new_ones(condition.mask.shape[0], 1), condition.mask], 1)
        return tokens, mask.to(torch.bool)

    def encode(
        self, x: Tensor, mask: Tensor, context: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """Posterior ``q(z | x (, y))``: mean ``(B, K, D)`` (norm sqrt(D) per slot) and log std
        ``(B, K, D)`` of preprocessed ``x (B, K, H)`` with slot ``mask (B, K)``; ``context``
        (:meth:`context`) is read by a conditional encoder only."""
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        h = torch.cat(
            [
                self.event_embedding(x[:, :1, : self.n_event]),
                self.object_embedding(x[:, 1:, : self.n_continuous + self.n_types]),
            ],
            dim=1,
        )
        h = self.vae_encoder(h + self.encoder_slots, mask, *self._cross(context, "encoder"))
        mean, log_std = self.encoder_out(h).chunk(2, dim=-1)
        mean = math.sqrt(self.latent_dim) * F.normalize(mean, dim=-1)
        return mean, (log_std + self._log_std_offset).clamp(-15.0, 5.0)

    def decode(self, z: Tensor, mask: Tensor, context: tuple[Tensor, Tensor] | None) -> Tensor:
        """Decoder output ``(B, K, H)`` of latents ``z (B, K, D)``: the continuous features
        (preprocessed) and, in the type columns of object slots, the type logits; unused
        columns 0. ``context`` is read by a conditional decoder only."""
        h = self.decoder_in(z) + self.decoder_slots
        h = self.vae_decoder(h, mask, *self._cross(context, "decoder"))
        features = self.target_shape[1]
        event = F.pad(self.event_out(h[:, :1]), (0, features - self.n_event))
        objects = self.object_out(h[:, 1:])
        objects = F.pad(objects, (0, features - objects.shape[-1]))
        return torch.cat([event, objects], dim=1)

    def _cross(
        self, context: tuple[Tensor, Tensor] | None, part: str
    ) -> tuple[Tensor, Tensor] | tuple[None, None]:
        conditional = (
            self.config.conditional_encoder
            if part == "encoder"
            else self.config.conditional_decoder
        )
        if not conditional:
            return None, None
        if context is None:
            raise ValueError(f"a conditional VAE {part} needs the detector context")
        return context

    def eps(
        self,
        z_t: Tensor,
        t: Tensor,
        mask: Tensor,
        context: tuple[Tensor, Tensor],
        *,
        shared_time: bool = False,
    ) -> Tensor:
        r"""Noise prediction ``(B, K, D)`` from ``z_t (B, K, D)``, ``t (B,)``, slot
        ``mask (B, K)`` and the detector context. ``shared_time``: every row has the same
        ``t`` (a sampler step). With ``config.gaussian_eps`` the network predicts the
        correction to :math:`\sigma_k(t) z_t` (see :class:`~hepvld.models.denoising.ConditionalDiffusion`)."""
        t_eval = t[:1] if shared_time else t
        time = self.time_projection(self.time_embedding(t_eval)).unsqueeze(1)  # (B|1, 1, dim)
        h = self.denoiser_in(z_t) + self.denoiser_slots + time
        out = self.denoiser_out(self.denoiser(h, mask, *context))
        if self.config.gaussian_eps:
            _, sigma = alpha_sigma_from_gamma(self.schedule.gamma(t_eval))  # (B|1, K)
            out = out + sigma.unsqueeze(-1) * z_t
        return out

    # ------------------------------------------------------------------ loss
    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The joint VL-VLD loss (module docstring).

        Parameters
        ----------
        batch
            ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``, ``targets (B, K, H)``
            (preprocessed), ``target_mask (B, K)``, optional ``weights (B,)``.
        generator
            Source of every random number drawn here.

        Returns
        -------
        dict
            ``loss`` and the weighted means of ``prior``, ``reconstruction`` (with its parts
            ``continuous`` and ``type_ce``), ``mse``, ``consistency``, ``vae``, ``diffusion``,
            ``multiplicity`` (the drawing head's NLL) and ``multiplicity_<kind>`` for each
            head (the other head trains on a detached condition; its NLL is in ``loss`` but
            reaches only its own weights), ``composition`` (the type-composition NLL; on a
            detached condition unless ``types == "joint"``) and ``candidate`` (0 unless
            ``config.vlvld_candidate_weight > 0``, which needs the batch's
            ``candidate_slots (B, 5)``).
        """
        x = batch["targets"]
        if x.ndim != 3:
            raise ValueError(f"VL-VLD needs targets (B, K, H), got {tuple(x.shape)}")
        mask = batch.get("target_mask")
        if mask is None:
            raise ValueError("VL-VLD needs the batch's target_mask (B, K)")
        mask = mask.to(torch.bool)
        cond = self.condition(batch["objects"], batch["mask"], batch["globals"])
        context = self.context(cond)
        mean, log_std = self.encode(x, mask, context)
        z = mean + log_std.exp() * randn(mean, generator)
        latent = self.latent_terms(z, mean, log_std, mask, context, generator)
        x_hat = self.decode(z, mask, context)
        continuous, type_ce, mse = self.reconstruction_parts(x_hat, x, mask)
        consistency = self.consistency(x_hat, mask)
        n = mask[:, 1:].sum(-1)
        heads = {}
        for kind, head in self.multiplicity.items():
            assert isinstance(head, MultiplicityHead)
            drawing = kind == self.config.vlvld_multiplicity
            heads[kind] = head.nll(cond.event if drawing else cond.event.detach(), n, generator)
        multiplicity = heads[self.config.vlvld_multiplicity]
        z_types = cond.event if self.types == "joint" else cond.event.detach()
        composition = self.composition.nll(z_types, n, self.type_counts(x, mask))
        candidate = self.candidate(x_hat, x, batch.get("candidate_slots"))
        reconstruction = continuous + type_ce
        c = self.config
        total = (
            latent["prior"]
            + reconstruction
            + c.consistency_weight * consistency
            + latent["vae"]
            + latent["diffusion"]
            + c.vlvld_multiplicity_weight * sum(heads.values())
            + c.vlvld_composition_weight * composition
            + c.vlvld_candidate_weight * candidate
        )
        terms = {
            "prior": latent["prior"],
            "reconstruction": reconstruction,
            "continuous": continuous,
            "type_ce": type_ce,
            "mse": mse,
            "consistency": consistency,
            "vae": latent["vae"],
            "diffusion": latent["diffusion"],
            "multiplicity": multiplicity,
            **{f"multiplicity_{kind}": v for kind, v in heads.items()},
            "composition": composition,
            "candidate": candidate,
        }
        return self.loss_dict(total, terms, batch.get("weights"))

    def latent_terms(
        self,
        z: Tensor,
        mean: Tensor,
        log_std: Tensor,
        mask: Tensor,
        context: tuple[Tensor, Tensor],
        generator: torch.Generator | None,
    ) -> dict[str, Tensor]:
        r"""``prior``, ``vae``, ``diffusion`` ``(B,)`` of a posterior draw ``z (B, K, D)``
        (posterior ``mean, log_std (B, K, D)``), over the real slots of ``mask (B, K)``.

        The gradient through ``z`` and ``mean`` into the VAE encoder is scaled by
        ``config.latent_gradient`` (as in :class:`~hepvld.models.vld.VLD`). Random numbers
        in the order: times, ε, ε₀."""
        g = self.config.latent_gradient
        w, w_mean = _scale_gradient(z, g), _scale_gradient(mean, g)
        weights = mask.to(z.dtype)
        t = sample_times(z.shape[0], generator=generator, device=z.device, dtype=z.dtype)
        gamma, dgamma = self.schedule.gamma_and_derivative(t)  # (B, K)
        noise = randn(z, generator)
        alpha, sigma = alpha_sigma_from_gamma(gamma)
        z_t = alpha.unsqueeze(-1) * w + sigma.unsqueeze(-1) * noise
        error = (noise - self.eps(z_t, t, mask, context)).square().sum(-1)  # (B, K)
        diffusion = 0.5 * (dgamma * error * weights).sum(-1)
        ends = self.schedule.gamma(torch.tensor([0.0, 1.0], device=z.device, dtype=z.dtype))
        gamma_0, gamma_1 = ends[0].unsqueeze(-1), ends[1].unsqueeze(-1)  # (K, 1)
        prior = 0.5 * (torch.sigmoid(-gamma_1) * (w.square() - 1.0) - F.logsigmoid(gamma_1))
        prior = (prior.sum(-1) * weights).sum(-1)
        alpha_0, sigma_0 = alpha_sigma_from_gamma(gamma_0)
        z_0 = alpha_0 * w + sigma_0 * randn(z, generator)
        vae = gaussian_kl(w_mean, log_std, z_0 / alpha_0, (0.5 * gamma_0).expand_as(z), mask)
        return {"prior": prior, "vae": vae, "diffusion": diffusion}

    def reconstruction_parts(
        self, x_hat: Tensor, x: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Continuous Gaussian NLL ``(B,)``, type cross-entropy ``(B,)`` and the per-entry
        squared error ``(B,)`` of a decoder output ``x_hat (B, K, H)`` against preprocessed
        ``x (B, K, H)``, over the real slots of ``mask (B, K)``."""
        log_scale = self.decoder_log_scale.clamp_min(math.log(self.config.min_decoder_scale))
        ne, nc = self.n_event, self.n_continuous
        objects = mask[:, 1:].to(x.dtype)
        event_err = (x_hat[:, 0, :ne] - x[:, 0, :ne]).square()
        object_err = (x_hat[:, 1:, :nc] - x[:, 1:, :nc]).square()
        nll_event = (0.5 * event_err * torch.exp(-2.0 * log_scale[:ne]) + log_scale[:ne]).sum(-1)
        nll_object = 0.5 * object_err * torch.exp(-2.0 * log_scale[ne:]) + log_scale[ne:]
        continuous = nll_event + (nll_object.sum(-1) * objects).sum(-1)
        tc = self.type_columns
        logits = x_hat[:, 1:, tc]
        target = x[:, 1:, tc].argmax(-1)
        ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
        type_ce = (ce.view_as(objects) * objects).sum(-1)
        entries = ne + nc * objects.sum(-1)
        mse = (event_err.sum(-1) + (object_err.sum(-1) * objects).sum(-1)) / entries
        return continuous, type_ce, mse

    def consistency(self, x_hat: Tensor, mask: Tensor) -> Tensor:
        """The level's consistency term ``(B,)`` of a decoder output (types as softmax
        probabilities), in physical units; zeros when off."""
        if not self.use_consistency:
            return x_hat.new_zeros(x_hat.shape[0])
        tc = self.type_columns
        objects = torch.cat(
            [
                x_hat[:, 1:, : tc.start],
                torch.softmax(x_hat[:, 1:, tc], dim=-1),
                x_hat[:, 1:, tc.stop :],
            ],
            dim=-1,
        )
        physical = self.to_physical(torch.cat([x_hat[:, :1], objects], dim=1))
        physical = physical.masked_fill(~mask.unsqueeze(-1), 0.0)
        value = self.level.consistency(physical, mask, scale=self.config.consistency_scale)
        return torch.as_tensor(value, dtype=x_hat.dtype, device=x_hat.device)

    def type_counts(self, x: Tensor, mask: Tensor) -> Tensor:
        """``(B, 3)`` int64 ``(n_b, n_e, n_mu)`` of targets ``x (B, K, H)`` (one-hot types)
        over the real object slots of ``mask (B, K)``."""
        types = x[:, 1:, self.type_columns].argmax(-1)
        real = mask[:, 1:]
        return torch.stack([((types == t) & real).sum(-1) for t in (0, 2, 3)], dim=-1)

    def candidate(self, x_hat: Tensor, x: Tensor, slots: Tensor | None) -> Tensor:
        """The pseudo-top candidate term ``(B,)`` (module docstring) of a decoder output
        ``x_hat (B, K, H)`` against preprocessed targets ``x (B, K, H)``, on the true
        pseudo-top assignment ``slots (B, 5)`` (``-1``: none, the term is 0); zeros when
        ``config.vlvld_candidate_weight`` is 0."""
        if self.config.vlvld_candidate_weight == 0:
            return x_hat.new_zeros(x_hat.shape[0])
        masses = getattr(self.level, "candidate_masses", None)
        if masses is None:
            raise ValueError(
                f"vlvld_candidate_weight > 0 needs a level with candidate_masses; "
                f"{getattr(self.level, 'name', self.level)!r} has none"
            )
        if slots is None:
            raise ValueError(
                "vlvld_candidate_weight > 0 needs the batch's candidate_slots (B, 5) "
                "(hepvld.data.prepare_data adds them for the particle level)"
            )
        valid = (slots >= 0).all(-1)
        # float32 whatever the autocast: the masses are differences of squares
        m_hat = masses(self.to_physical(x_hat.float()), slots)
        with torch.no_grad():
            m_true = masses(self.to_physical(x.float()), slots)
        scale = self.config.vlvld_candidate_scale
        d2 = ((m_hat - m_true) / scale).square()
        term = (2.0 * ((1.0 + d2).sqrt() - 1.0)).sum(-1)
        return torch.where(valid, term, torch.zeros_like(term))

    # ------------------------------------------------------------------ sampling
    def composition_log_pmf(self, z_y: Tensor, n: Tensor, *, restricted: bool = True) -> Tensor:
        """``log p(n_b, n_e, n_mu | n, z_y)`` ``(B, O)`` (index order of
        :meth:`CompositionHead.counts <hepvld.models.composition.CompositionHead.counts>`),
        ``restricted`` to the level's phase space as at sampling."""
        return self.composition.log_pmf(z_y, n, self.composition_allowed if restricted else None)

    def multiplicity_log_pmf(self, z_y: Tensor, kind: str | None = None) -> Tensor:
        """``log p(n | z_y)`` ``(B, K)`` for ``n = 0 .. K - 1`` of head ``kind`` (default the
        configured one), from the event condition ``z_y (B, C)``."""
        head = self.multiplicity[kind or self.config.vlvld_multiplicity]
        assert isinstance(head, MultiplicityHead)
        return head.log_pmf(z_y)

    def generate_draws(
        self,
        noise: Tensor,
        condition: Condition,
        *,
        sampler: SamplerSpec,
        generator: torch.Generator | None,
        step_noise: Callable[[int, Tensor], Tensor] | None = None,
        multiplicity: str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """From initial noise ``(M, K + 1, D)`` and conditions (batch ``M``): draw ``n``
        (row ``K``), diffuse the ``n + 1`` slots (rows ``0 .. K - 1``), decode.

        Returns preprocessed values ``(M, K, H)`` (types one-hot, padded slots 0) and the
        slot mask ``(M, K)``. With ``types == "joint"`` the composition is drawn too (row
        ``K``, column 1) and the slots typed under it (module docstring); else each slot
        takes its own argmax. ``multiplicity`` names the head that draws ``n`` (default the
        configured one). ``step_noise(step, z)`` gives ddpm's per-step noise of the
        ``(M, K + 1, D)`` noise row (the slots' rows are used) or like ``z``.
        """
        if sampler.name not in SAMPLERS:
            raise ValueError(
                f"sampler {sampler.name!r} is not available for {self.name!r}: distilled "
                "students exist for the fixed-length diffusion families only (vld, uc-vld, "
                f"c-vld, ldm, vdm); choose one of {sorted(SAMPLERS)}"
            )
        k = self.n_slots
        slot_noise = None
        if step_noise is not None:
            step_fn = step_noise

            def slot_noise(step: int, z: Tensor) -> Tensor:
                return step_fn(step, z)[:, :k]

        head = self.multiplicity[multiplicity or self.config.vlvld_multiplicity]
        assert isinstance(head, MultiplicityHead)
        u_n = torch.special.ndtr(noise[:, k, 0].float())
        counts = None
        if self.types == "joint":
            n, counts = self._draw_composition(head, condition.event, u_n, noise[:, k])
        else:
            n = head.sample(condition.event, u_n)
        slots = torch.arange(k, device=noise.device)
        mask = slots[None, :] <= n[:, None]
        context = self.context(condition)

        def eps_fn(z_t: Tensor, t: Tensor) -> Tensor:
            return self.eps(z_t, t, mask, context, shared_time=True)

        times = timesteps(
            sampler.steps,
            gamma_fn=lambda t: self.schedule.gamma(t).mean(-1),
            spacing=sampler.spacing,
            device=noise.device,
            dtype=noise.dtype,
        )
        z_0 = SAMPLERS[sampler.name](
            eps_fn,
            self.schedule.per_slot,
            noise[:, :k].contiguous(),
            times=times,
            noise_fn=slot_noise,
            generator=generator,
        )
        gamma_0 = self.schedule.per_slot(torch.zeros(1, device=noise.device, dtype=noise.dtype))[0]
        alpha_0, _ = alpha_sigma_from_gamma(gamma_0)
        out = self.decode(z_0 / alpha_0, mask, context)
        tc = self.type_columns
        if counts is None:
            type_index = out[:, 1:, tc].argmax(-1)
        else:
            type_index = assign_types(out[:, 1:, tc], mask[:, 1:], counts)
        types = F.one_hot(type_index, self.n_types).to(out.dtype)
        out = torch.cat(
            [out[:, :1], torch.cat([out[:, 1:, : tc.start], types, out[:, 1:, tc.stop :]], -1)],
            dim=1,
        )
        return out.masked_fill(~mask.unsqueeze(-1), 0.0), mask

    def _draw_composition(
        self, head: MultiplicityHead, z_y: Tensor, u_n: Tensor, row: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``n (M,)`` and the composition ``(M, 3)`` of each draw (``types == "joint"``):
        ``n`` from ``p(n | z_y)`` restricted to the multiplicities with an allowed
        composition, at uniforms ``u_n (M,)``; the composition at ``Phi(row[:, 1])`` of the
        noise row ``row (M, D)`` (for ``D = 1``: the residual ``(u_n - F(n - 1)) / p(n)``,
        uniform and independent of ``n``)."""
        allowed = self.composition_allowed
        log_pmf = head.log_pmf(z_y).masked_fill(~allowed.any(-1), float("-inf"))
        log_pmf = torch.log_softmax(log_pmf, dim=-1)
        n = inverse_cdf(log_pmf, u_n)
        if row.shape[-1] >= 2:
            u_c = torch.special.ndtr(row[:, 1].float())
        else:
            cdf = log_pmf.double().exp().cumsum(-1)
            below = torch.where(n > 0, cdf.gather(-1, (n - 1).clamp_min(0)[:, None])[:, 0], 0.0)
            p_n = log_pmf.double().exp().gather(-1, n[:, None])[:, 0]
            u_c = ((u_n.double() * cdf[:, -1] - below) / p_n).clamp(0.0, 1.0).float()
        return n, self.composition.sample(z_y, n, u_c, allowed)

    def generate(
        self,
        noise: Tensor,
        condition: Condition,
        *,
        sampler: SamplerSpec,
        generator: torch.Generator | None,
        step_noise: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """:meth:`generate_draws` flattened ``(M, K * H)`` (padded slots 0; the mask is lost:
        use :meth:`sample`)."""
        values, _ = self.generate_draws(
            noise, condition, sampler=sampler, generator=generator, step_noise=step_noise
        )
        return values.flatten(1)

    def physical_draws(self, draws: Draws) -> Draws:
        """Preprocessed draws -> physical: continuous columns through the target affine map,
        types kept one-hot, unused event columns and padded slots 0."""
        physical = self.to_physical(draws.values)
        tc = self.type_columns
        physical[..., 1:, tc] = draws.values[..., 1:, tc]
        physical[..., 0, self.n_event :] = 0.0
        return Draws(physical.masked_fill(~draws.mask.unsqueeze(-1), 0.0), draws.mask)


def _family(name: str, variant: str) -> None:
    @register(name, level="particle")
    def build(config: ModelConfig, io: ModelIO) -> VLVLD:
        if config.variant != variant:
            config = ModelConfig.from_dict({**config.to_dict(), "variant": variant})
        return VLVLD(config, io)


for _name, _variant in FAMILY_VARIANTS.items():
    _family(_name, _variant)
