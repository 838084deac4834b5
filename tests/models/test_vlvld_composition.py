"""VL-VLD's joint type composition and pseudo-top candidate term (issue 11), on the real
``particle`` level with fake values in its layout (:mod:`hepvld.testing.particle`)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hepvld.diffusion import SamplerSpec
from hepvld.features.particle_pseudotop import ASSIGNMENT_ROLES
from hepvld.models import build_model, model_config
from hepvld.models.composition import CompositionHead, assign_types, inverse_cdf, top_k_mask
from hepvld.models.config import ModelConfig
from hepvld.models.vlvld import VLVLD
from hepvld.targets import get_level
from hepvld.targets.particle import CANDIDATES, ParticleLevel
from hepvld.targets.particle_output import feature_labels, feature_table
from hepvld.testing.particle import fake_particle_values
from hepvld.training.checkpoint import load_state_checked

MAX_OBJECTS = 8
N_DET, F_DET, G_DET = 6, 12, 2


def _level(phase_space: str = "detector") -> ParticleLevel:
    level = get_level("particle", {"max_objects": MAX_OBJECTS, "phase_space": phase_space})
    assert isinstance(level, ParticleLevel)
    return level


def _model(level: ParticleLevel, values: np.ndarray, mask: np.ndarray, **over: object) -> VLVLD:
    torch.manual_seed(0)
    shift, scale = level.preprocessing().fit(values, mask).affine()
    cfg = model_config("tiny", **{"vlvld_latent_dim": 4, **over})  # type: ignore[arg-type]
    net = build_model(
        "c-vl-vld",
        cfg,
        object_features=F_DET,
        global_features=G_DET,
        level=level,
        target_shift=shift,
        target_scale=scale,
    )
    assert isinstance(net, VLVLD)
    return net


def _batch(level: ParticleLevel, values: np.ndarray, mask: np.ndarray) -> dict[str, torch.Tensor]:
    """A batch whose detector objects carry the true type counts (so the condition can
    predict the composition)."""
    b = len(values)
    gen = torch.Generator().manual_seed(1)
    pre = level.preprocessing().fit(values, mask)
    objects = torch.randn(b, N_DET, F_DET, generator=gen)
    types = values[:, 1:, 5:9].argmax(-1)
    real = mask[:, 1:]
    objects[:, 0, 0] = torch.as_tensor(((types == 0) & real).sum(-1), dtype=torch.float32)
    objects[:, 0, 1] = torch.as_tensor(real.sum(-1), dtype=torch.float32)
    return {
        "objects": objects,
        "mask": torch.ones(b, N_DET, dtype=torch.bool),
        "globals": torch.randn(b, G_DET, generator=gen),
        "targets": torch.as_tensor(pre.transform(values, mask), dtype=torch.float32),
        "target_mask": torch.as_tensor(mask),
        "weights": torch.ones(b),
        "candidate_slots": torch.as_tensor(level.candidate_slots(values, mask)),
    }


def _counts(draws_values: torch.Tensor, draws_mask: torch.Tensor) -> dict[str, np.ndarray]:
    types = draws_values[..., 1:, 5:9].argmax(-1).numpy()
    real = draws_mask[..., 1:].numpy()
    return {
        "n": real.sum(-1),
        "b": ((types == 0) & real).sum(-1),
        "jets": ((types <= 1) & real).sum(-1),
        "leptons": ((types >= 2) & real).sum(-1),
    }


# --------------------------------------------------------------------- composition head
def test_composition_pmf_normalises_on_the_feasible_and_allowed_compositions() -> None:
    torch.manual_seed(0)
    head = CompositionHead(8, n_max=MAX_OBJECTS)
    z = torch.randn(40, 8)
    n = torch.randint(0, MAX_OBJECTS + 1, (40,))
    p = head.log_pmf(z, n).exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(40), rtol=0, atol=1e-5)
    nb, ne, nm = head.counts(torch.arange(head.n_outcomes)).unbind(-1)
    infeasible = (nb + ne + nm)[None, :] > n[:, None]
    assert (p[infeasible] == 0).all() and (p[~infeasible] > 0).all()
    allowed = torch.as_tensor(_level().composition_support()).reshape(MAX_OBJECTS + 1, -1)
    rows = allowed.any(-1)[n]
    q = head.log_pmf(z[rows], n[rows], allowed).exp()
    torch.testing.assert_close(q.sum(-1), torch.ones(int(rows.sum())), rtol=0, atol=1e-5)
    assert (q[~allowed[n[rows]]] == 0).all()
    # index <-> counts round trip
    idx = torch.arange(head.n_outcomes)
    assert torch.equal(head.index(head.counts(idx)), idx)


def test_composition_nll_decreases_when_trained() -> None:
    torch.manual_seed(0)
    head = CompositionHead(4, n_max=MAX_OBJECTS)
    gen = torch.Generator().manual_seed(3)
    n = torch.randint(5, MAX_OBJECTS + 1, (256,), generator=gen)
    nb = torch.randint(2, 4, (256,), generator=gen)
    ne = torch.randint(0, 2, (256,), generator=gen)
    counts = torch.stack([nb, ne, 1 - ne], -1)
    z = torch.stack([nb.float(), ne.float(), n.float(), torch.randn(256, generator=gen)], -1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    history = []
    for _ in range(150):
        loss = head.nll(z, n, counts).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.2 * history[0], (history[0], history[-1])


def test_inverse_cdf_never_draws_a_zero_probability_entry() -> None:
    log_pmf = torch.log(torch.tensor([[0.0, 0.3, 0.0, 0.7, 0.0]])).expand(6, 5)
    u = torch.tensor([0.0, 1e-30, 0.29, 0.31, 1.0 - 1e-9, 1.0])
    assert inverse_cdf(log_pmf, u).tolist() == [1, 1, 1, 3, 3, 3]


# --------------------------------------------------------------------- constrained types
def test_a_constrained_draw_has_exactly_the_composition_property() -> None:
    gen = torch.Generator().manual_seed(7)
    for trial in range(200):
        b, s = 8, MAX_OBJECTS
        logits = 3.0 * torch.randn(b, s, 4, generator=gen)
        n = torch.randint(0, s + 1, (b,), generator=gen)
        mask = torch.arange(s)[None, :] < n[:, None]
        n_lep = torch.minimum(torch.randint(0, 3, (b,), generator=gen), n)
        n_e = (torch.rand(b, generator=gen) * (n_lep + 1)).long().clamp(max=n_lep)
        n_b = (torch.rand(b, generator=gen) * (n - n_lep + 1)).long().clamp(max=n - n_lep)
        counts = torch.stack([n_b, n_e, n_lep - n_e], -1)
        types = assign_types(logits, mask, counts)
        got = torch.stack([((types == t) & mask).sum(-1) for t in (0, 2, 3)], -1)
        assert torch.equal(got, counts), trial
        assert (types[~mask] == 1).all()
        # the b-jets are the most b-like of the jets (top-k of the log-odds)
        logp = logits.log_softmax(-1)
        odds = logp[..., 0] - logp[..., 1]
        jets = mask & (types <= 1)
        for i in range(b):
            chosen, rest = odds[i][jets[i] & (types[i] == 0)], odds[i][jets[i] & (types[i] == 1)]
            if len(chosen) and len(rest):
                assert chosen.min() >= rest.max()


def test_top_k_mask_ignores_ineligible_entries() -> None:
    score = torch.tensor([[5.0, 1.0, 3.0, 9.0]])
    eligible = torch.tensor([[True, True, True, False]])
    assert top_k_mask(score, eligible, torch.tensor([2])).tolist() == [[True, False, True, False]]


def test_composition_support_is_the_detector_phase_space() -> None:
    det, wide = _level().composition_support(), _level("wide").composition_support()
    n, nb, ne, nm = np.nonzero(det)
    assert ((ne + nm) == 1).all() and (nb >= 2).all() and (n - 1 >= 4).all()
    assert (nb + ne + nm <= n).all() and det[5, 2, 1, 0] and not det[5, 1, 1, 0]
    assert wide[3, 1, 0, 2] and not wide[3, 2, 1, 1] and (det <= wide).all()


@pytest.mark.parametrize("latent", [4, 1])
def test_a_trained_model_never_draws_outside_the_detector_phase_space(latent: int) -> None:
    level = _level()
    rng = np.random.default_rng(0)
    values, mask = fake_particle_values(rng, (96,), MAX_OBJECTS)
    net = _model(level, values, mask, vlvld_latent_dim=latent)
    batch = _batch(level, values, mask)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = last = 0.0
    for step in range(25):
        out = net.loss(batch, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = float(out["composition"].detach()) if step == 0 else first
        last = float(out["composition"].detach())
    assert last < first
    net.eval()
    args = (batch["objects"], batch["mask"], batch["globals"])
    spec = SamplerSpec("dpmpp2m", steps=3)
    noise = torch.randn(96, 8, *net.noise_shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        joint = net.unfold(*args, n_samples=8, sampler=spec, noise=noise)
        net.types = "independent"
        independent = net.unfold(*args, n_samples=8, sampler=spec, noise=noise)
    c = _counts(joint.values, joint.mask)
    assert (c["leptons"] == 1).all() and (c["b"] >= 2).all() and (c["jets"] >= 4).all()
    # the same network typing slot by slot leaves the phase space: the test can fail
    ci = _counts(independent.values, independent.mask)
    assert ((ci["leptons"] != 1) | (ci["b"] < 2) | (ci["jets"] < 4)).any()


# --------------------------------------------------------------------- candidates
def test_candidate_slots_reproduce_the_pseudo_top_masses() -> None:
    level = _level()
    values, mask = fake_particle_values(np.random.default_rng(4), (300,), MAX_OBJECTS)
    slots = level.candidate_slots(values, mask)
    assert slots.shape == (300, len(ASSIGNMENT_ROLES)) and slots.dtype == np.int64
    valid = (slots >= 0).all(-1)
    assert valid.mean() > 0.95 and ((slots == -1).all(-1) | valid).all()
    assert (slots[valid] >= 1).all() and (slots[valid] <= mask.sum(-1)[valid, None] - 1).all()
    types = values[:, 1:, 5:9].argmax(-1)
    role_type = np.take_along_axis(types, np.maximum(slots - 1, 0), axis=-1)[valid]
    assert (role_type[:, :2] == 0).all() and (role_type[:, 4] >= 2).all()
    assert (role_type[:, 2:4] <= 1).all()
    masses = level.candidate_masses(torch.as_tensor(values), torch.as_tensor(slots)).numpy()
    table = feature_table(level, values, mask)
    col = {name: i for i, name in enumerate(feature_labels(level))}
    for j, name in enumerate(CANDIDATES):
        np.testing.assert_allclose(
            masses[valid, j], table[valid, col[f"{name}/mass"]], rtol=1e-6, atol=1e-6
        )
    assert np.isnan(table[~valid, col["t_had/mass"]]).all()


def test_candidate_term_is_zero_for_the_truth_and_positive_for_swapped_objects() -> None:
    level = _level()
    values, mask = fake_particle_values(np.random.default_rng(5), (32,), MAX_OBJECTS)
    net = _model(level, values, mask, vlvld_candidate_weight=1.0)
    batch = _batch(level, values, mask)
    x, slots = batch["targets"], batch["candidate_slots"]
    valid = (slots >= 0).all(-1)
    assert valid.any()
    torch.testing.assert_close(net.candidate(x, x, slots), torch.zeros(32), rtol=0, atol=1e-6)
    swapped = x.clone()
    rows = torch.arange(32)
    b_had, q1 = slots[:, 0].clamp_min(0), slots[:, 2].clamp_min(0)
    swapped[rows, b_had], swapped[rows, q1] = x[rows, q1], x[rows, b_had]
    term = net.candidate(swapped, x, slots)
    assert (term[valid] > 0).all() and (term[~valid] == 0).all()
    # in the loss, with its weight; without candidate_slots a clear error
    out = net.loss(batch, generator=torch.Generator().manual_seed(0))
    assert float(out["candidate"].detach()) > 0
    with pytest.raises(ValueError, match="candidate_slots"):
        net.loss({k: v for k, v in batch.items() if k != "candidate_slots"})
    off = _model(level, values, mask)
    out = off.loss({k: v for k, v in batch.items() if k != "candidate_slots"})
    assert float(out["candidate"].detach()) == 0.0


# --------------------------------------------------------------------- old checkpoints
def test_a_checkpoint_without_the_composition_head_loads_and_samples_as_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    level = _level()
    values, mask = fake_particle_values(np.random.default_rng(6), (16,), MAX_OBJECTS)
    # the old network: its config has no vlvld_types (default now 'joint'), its state no head
    old_config = {
        k: v
        for k, v in model_config("tiny", vlvld_latent_dim=4).to_dict().items()
        if not k.startswith(("vlvld_types", "vlvld_composition", "vlvld_candidate"))
    }
    independent = _model(level, values, mask, vlvld_types="independent").eval()
    state = {k: v for k, v in independent.state_dict().items() if not k.startswith("composition.")}
    shift, scale = level.preprocessing().fit(values, mask).affine()
    torch.manual_seed(123)  # other initial weights: everything must come from the state
    loaded = build_model(
        "c-vl-vld",
        ModelConfig.from_dict(old_config),
        object_features=F_DET,
        global_features=G_DET,
        level=level,
        target_shift=shift,
        target_scale=scale,
    )
    assert isinstance(loaded, VLVLD) and loaded.types == "joint"
    with caplog.at_level(logging.WARNING, logger="hepvld.models.vlvld"):
        load_state_checked(loaded, state, "old checkpoint")  # the path of hepvld.load
    assert loaded.types == "independent" and "typed slot by slot" in caplog.text
    plain = _model(level, values, mask)
    plain.load_state_dict(state)  # the path of a resumed training
    assert plain.types == "independent"
    loaded.eval()
    batch = _batch(level, values, mask)
    args = (batch["objects"], batch["mask"], batch["globals"])
    noise = torch.randn(16, 4, *loaded.noise_shape, generator=torch.Generator().manual_seed(9))
    spec = SamplerSpec("dpmpp2m", steps=3)
    with torch.no_grad():
        a = independent.unfold(*args, n_samples=4, sampler=spec, noise=noise)
        b = loaded.unfold(*args, n_samples=4, sampler=spec, noise=noise)
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.values, b.values, rtol=0, atol=0)
    # a current checkpoint keeps the joint typing
    fresh = _model(level, values, mask)
    fresh.load_state_dict(fresh.state_dict())
    assert fresh.types == "joint"
