"""Particle-level pseudo-top on constructed events with known answers."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
import pytest
import vector

from hepvld.features.particle_pseudotop import (
    TOP_MASS,
    W_MASS,
    detector_objects,
    neutrino_from_met,
    pseudo_top,
)
from hepvld.testing.synthetic import toy_events

vector.register_awkward()


def _two_body(parent: Any, m1: float, m2: float, rng: np.random.Generator) -> tuple[Any, Any]:
    """Decay ``parent`` (vector object) isotropically into masses m1, m2."""
    M = parent.mass
    p = np.sqrt((M**2 - (m1 + m2) ** 2) * (M**2 - (m1 - m2) ** 2)) / (2 * M)
    c, phi = rng.uniform(-1, 1), rng.uniform(-np.pi, np.pi)
    s = np.sqrt(1 - c**2)
    d = (p * s * np.cos(phi), p * s * np.sin(phi), p * c)
    a = vector.obj(px=d[0], py=d[1], pz=d[2], mass=m1).boost_p4(parent)
    b = vector.obj(px=-d[0], py=-d[1], pz=-d[2], mass=m2).boost_p4(parent)
    return a, b


def _event(
    rng: np.random.Generator, n_isr: int
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """One tt̄ event with exact masses: objects (shuffled), event record, truth momenta."""
    t_had = vector.obj(
        px=rng.normal(0, 80), py=rng.normal(0, 80), pz=rng.normal(0, 200), mass=TOP_MASS
    )
    t_lep = vector.obj(
        px=rng.normal(0, 80), py=rng.normal(0, 80), pz=rng.normal(0, 200), mass=TOP_MASS
    )
    w_had, b_had = _two_body(t_had, W_MASS, 4.8, rng)
    w_lep, b_lep = _two_body(t_lep, W_MASS, 4.8, rng)
    q1, q2 = _two_body(w_had, 0.0, 0.0, rng)
    lep, nu = _two_body(w_lep, 0.0, 0.0, rng)

    def obj(p: Any, t: int) -> dict[str, Any]:
        return {"px": p.px, "py": p.py, "pz": p.pz, "E": p.E, "type": t}

    objs = [obj(b_had, 0), obj(b_lep, 0), obj(q1, 1), obj(q2, 1), obj(lep, 3)]
    for _ in range(n_isr):  # extra light jets that must not be chosen
        pt, phi = rng.uniform(30, 60), rng.uniform(-np.pi, np.pi)
        objs.append(obj(vector.obj(pt=pt, phi=phi, eta=rng.normal(0, 2), mass=5.0), 1))
    order = rng.permutation(len(objs))
    event = {
        "met": nu.pt,
        "met_phi": nu.phi,
        "nu": {"px": nu.px, "py": nu.py, "pz": nu.pz, "E": nu.E},
    }
    truth = {"t_had": t_had, "t_lep": t_lep, "W_had": w_had, "W_lep": w_lep}
    return [objs[i] for i in order], event, truth


def _arrays(events: list[Any]) -> tuple[ak.Array, ak.Array]:
    objects = ak.with_name(ak.Array([e[0] for e in events]), "Momentum4D")
    ev = ak.Array([e[1] for e in events])
    ev = ak.zip(
        {"met": ev.met, "met_phi": ev.met_phi, "nu": ak.with_name(ev.nu, "Momentum4D")},
        depth_limit=1,
    )
    return objects, ev


def test_known_assignment_is_found() -> None:
    rng = np.random.default_rng(4)
    events = [_event(rng, n_isr=i % 3) for i in range(40)]
    objects, ev = _arrays(events)
    out = pseudo_top(objects, ev)
    assert len(out) == 40 and ak.all(out.valid)
    np.testing.assert_allclose(ak.to_numpy(out.t_had.mass), TOP_MASS, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(out.t_lep.mass), TOP_MASS, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(out.W_had.mass), W_MASS, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(out.W_lep.mass), W_MASS, atol=1e-3)
    for name in ("t_had", "t_lep", "W_had"):
        truth = np.array([[e[2][name].px, e[2][name].pz] for e in events])
        got = np.stack([ak.to_numpy(out[name].px), ak.to_numpy(out[name].pz)], axis=-1)
        np.testing.assert_allclose(got, truth, atol=1e-6)
    tt = ak.to_numpy((out.t_had + out.t_lep).mass)
    np.testing.assert_allclose(ak.to_numpy(out.ttbar.mass), tt, rtol=1e-9)


def test_a_surplus_b_jet_can_form_the_hadronic_w() -> None:
    rng = np.random.default_rng(7)
    events = [_event(rng, n_isr=1) for _ in range(20)]
    objects, ev = _arrays(events)
    # relabel the first light jet of each event (a true W daughter or the ISR jet) as a b
    first_q = ak.local_index(objects) == ak.argmax(objects["type"] == 1, axis=1, keepdims=True)
    three_b = ak.with_field(objects, ak.where(first_q, 0, objects["type"]), "type")
    assert ak.all(ak.sum(three_b["type"] == 0, axis=1) == 3)
    out = pseudo_top(three_b, ev)
    assert ak.all(out.valid)
    np.testing.assert_allclose(ak.to_numpy(out.t_had.mass), TOP_MASS, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(out.W_had.mass), W_MASS, atol=1e-3)


def test_draw_axis_string_types_and_invalid_events() -> None:
    rng = np.random.default_rng(5)
    events = [_event(rng, n_isr=1) for _ in range(6)]
    objects, ev = _arrays(events)
    flat = pseudo_top(objects, ev)
    # (B=2, S=3, var): the same answer per draw
    drawn = pseudo_top(ak.unflatten(objects, [3, 3]), ak.unflatten(ev, [3, 3]))
    assert ak.to_list(ak.num(drawn, axis=1)) == [3, 3]
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(drawn.t_had.mass)), ak.to_numpy(flat.t_had.mass)
    )
    names = ("bjet", "light_jet", "electron", "muon")
    as_str = ak.with_field(
        objects, ak.Array([[names[o["type"]] for o in e[0]] for e in events]), "type"
    )
    np.testing.assert_allclose(
        ak.to_numpy(pseudo_top(as_str, ev).t_had.mass), ak.to_numpy(flat.t_had.mass)
    )
    # one b-jet only (the other relabelled light): no assignment, NaN, valid False
    first_b = ak.local_index(objects) == ak.argmax(objects["type"] == 0, axis=1, keepdims=True)
    one_b = ak.with_field(objects, ak.where(first_b, 1, objects["type"]), "type")
    bad = pseudo_top(one_b, ev)
    assert not ak.any(bad.valid) and np.isnan(ak.to_numpy(bad.t_had.E)).all()
    empty = pseudo_top(objects[:0], ev[:0])
    assert len(empty) == 0


def test_neutrino_from_met_solves_the_w_mass() -> None:
    rng = np.random.default_rng(6)
    events = [_event(rng, n_isr=0) for _ in range(30)]
    objects, ev = _arrays(events)
    nu = neutrino_from_met(objects, ak.to_numpy(ev.met), ak.to_numpy(ev.met_phi))
    lep = ak.firsts(objects[objects["type"] >= 2])
    true_nu = ev.nu
    np.testing.assert_allclose(ak.to_numpy(nu.px), ak.to_numpy(true_nu.px), atol=1e-9)
    m = ak.to_numpy((lep + nu).mass)
    real = m > W_MASS - 1e-3  # complex solutions take the real part (mass above m_W)
    np.testing.assert_allclose(m[real], W_MASS, rtol=1e-6)
    # the true pz is one of the two roots: the chosen one is at least as small in |pz|
    assert (np.abs(ak.to_numpy(nu.pz)) <= np.abs(ak.to_numpy(true_nu.pz)) + 1e-6).all()


def test_detector_objects_of_selected_events() -> None:
    from hepvld.features import select

    ev = toy_events(200, seed=8)
    sel = ev[select(ev)[0]]
    obj = detector_objects(sel)
    t = obj["type"]
    assert ak.all(ak.sum(t >= 2, axis=1) == 1) and ak.all(ak.sum(t == 0, axis=1) >= 2)
    assert ak.all(obj.pt[:, :-1] >= obj.pt[:, 1:])
    out = pseudo_top(
        obj,
        ak.zip(
            {
                "met": sel.MET.pt,
                "met_phi": sel.MET.phi,
                "nu": neutrino_from_met(obj, ak.to_numpy(sel.MET.pt), ak.to_numpy(sel.MET.phi)),
            },
            depth_limit=1,
        ),
    )
    valid = ak.to_numpy(out.valid)
    assert valid.all()  # every selected event: >= 2 b-tags, >= 4 jets, 1 lepton
    assert np.median(ak.to_numpy(out.t_had.mass)[valid]) == pytest.approx(TOP_MASS, abs=40)
