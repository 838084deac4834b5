"""Synthetic NanoAOD-like tt̄ events for tests, benchmarks and examples (no generator needed).

The hard process is a simple toy (isotropic tt̄ in its rest frame, Gaussian top/W masses,
isotropic two-body decays with ``vector`` boosts) but the *record layout* is exactly the
one written by ``hepvld.generate`` (docs/schema.md): 10 ``GenPart`` entries, NanoAOD
``statusFlags``, detector-level jets/leptons/MET with a crude smearing, particle-level
``GenJet`` / ``GenDressedLepton`` / ``GenMET``. Optionally the ``GenPart`` record is
expanded into a NanoAOD-like shower history (beam partons, several copies of t and W,
shower gluons, a b from gluon splitting, a lepton from a b decay) to exercise readers on
real-NanoAOD-like truth. Everything is vectorised over events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import awkward as ak
import numpy as np
import vector

__all__ = ["HARD_FLAGS", "nanoaod_history", "toy_events", "write_root"]

vector.register_awkward()

#: statusFlags of hard-process entries: isPrompt, isHardProcess, fromHardProcess,
#: isFirstCopy, isLastCopy (bits 0, 7, 8, 12, 13).
HARD_FLAGS: int = (1 << 0) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 13)
_FROM_HARD = 1 << 8
_FIRST, _LAST = (1 << 12), (1 << 13)

Decay = Literal["semileptonic", "tau", "dileptonic", "allhadronic"]
_MASS = {
    1: 0.0,
    2: 0.0,
    3: 0.0,
    4: 1.5,
    5: 4.8,
    11: 0.000511,
    12: 0.0,
    13: 0.10566,
    14: 0.0,
    15: 1.777,
    16: 0.0,
}


def _two_body(
    parent: Any, m1: np.ndarray, m2: np.ndarray, rng: np.random.Generator
) -> tuple[Any, Any]:
    M = parent.mass
    p = np.sqrt(np.clip((M**2 - (m1 + m2) ** 2) * (M**2 - (m1 - m2) ** 2), 0, None)) / (2 * M)
    cos = rng.uniform(-1, 1, len(M))
    phi = rng.uniform(-np.pi, np.pi, len(M))
    sin = np.sqrt(1 - cos**2)
    d = np.stack([p * sin * np.cos(phi), p * sin * np.sin(phi), p * cos], axis=-1)
    a: Any = vector.array({"px": d[:, 0], "py": d[:, 1], "pz": d[:, 2], "mass": m1})
    b: Any = vector.array({"px": -d[:, 0], "py": -d[:, 1], "pz": -d[:, 2], "mass": m2})
    return a.boost_p4(parent), b.boost_p4(parent)


def _w_daughters(
    kind: np.ndarray, plus: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """pdgIds (fermion, antifermion) of a W+ (plus) or W- for kind 0 had, 1 e/mu, 2 tau."""
    n = len(kind)
    lep = np.where(rng.random(n) < 0.5, 11, 13)
    lep = np.where(kind == 2, 15, lep)
    up = np.where(rng.random(n) < 0.5, 2, 4)
    down = up - 1
    if plus:  # W+ -> nu l+ , u dbar
        f = np.where(kind == 0, up, lep + 1)
        fbar = np.where(kind == 0, -down, -lep)
    else:  # W- -> l- nubar , d ubar
        f = np.where(kind == 0, down, lep)
        fbar = np.where(kind == 0, -up, -(lep + 1))
    return f, fbar


def _mass_of(pdg: np.ndarray) -> np.ndarray:
    lut = np.zeros(17)
    for k, v in _MASS.items():
        lut[k] = v
    return lut[np.abs(pdg)]


def _jagged(values: np.ndarray, keep: np.ndarray, order: np.ndarray) -> ak.Array:
    """(B, K) values -> jagged lists of the kept entries in ``order``."""
    v = np.take_along_axis(values, order, axis=1)
    k = np.take_along_axis(keep, order, axis=1)
    return ak.unflatten(v[k], k.sum(axis=1))


def toy_events(
    n: int,
    *,
    seed: int = 0,
    decay: Decay | Sequence[Decay] = "semileptonic",
    first_event: int = 0,
) -> ak.Array:
    """Synthetic events in hepvld's NanoAOD-like layout.

    Parameters
    ----------
    n
        Number of events ``B``.
    seed
        Seed of the local ``numpy`` generator.
    decay
        tt̄ decay mode of every event, or a sequence of modes cycled over events.
    first_event
        Event number of the first event.

    Returns
    -------
    ak.Array
        ``B`` records as returned by :func:`hepvld.io.open_events`.
    """
    rng = np.random.default_rng(seed)
    modes = [decay] if isinstance(decay, str) else list(decay)
    mode = np.array([modes[i % len(modes)] for i in range(n)], dtype=object)
    mtt = 2 * 173.0 + 10 + rng.exponential(120.0, n)
    pz_tt = rng.normal(0, 400.0, n)
    tt = vector.array({"px": np.zeros(n), "py": np.zeros(n), "pz": pz_tt, "mass": mtt})
    mt = rng.normal(173.0, 1.3, (2, n))
    t, tbar = _two_body(tt, mt[0], mt[1], rng)
    mw = np.clip(rng.normal(80.4, 2.0, (2, n)), 60, 100)
    wp, b = _two_body(t, mw[0], np.full(n, 4.8), rng)
    wm, bbar = _two_body(tbar, mw[1], np.full(n, 4.8), rng)
    lep_on_plus = rng.random(n) < 0.5
    kind_p = np.where(lep_on_plus, 1, 0)
    kind_m = np.where(lep_on_plus, 0, 1)
    kind_p = np.where(mode == "dileptonic", 1, np.where(mode == "allhadronic", 0, kind_p))
    kind_m = np.where(mode == "dileptonic", 1, np.where(mode == "allhadronic", 0, kind_m))
    kind_p = np.where((mode == "tau") & (kind_p == 1), 2, kind_p)
    kind_m = np.where((mode == "tau") & (kind_m == 1), 2, kind_m)
    fp, fbp = _w_daughters(kind_p, True, rng)
    fm, fbm = _w_daughters(kind_m, False, rng)
    d1, d2 = _two_body(wp, _mass_of(fp), _mass_of(fbp), rng)
    d3, d4 = _two_body(wm, _mass_of(fm), _mass_of(fbm), rng)

    parts = [t, tbar, wp, b, wm, bbar, d1, d2, d3, d4]
    pdg = np.stack(
        [
            np.full(n, 6),
            np.full(n, -6),
            np.full(n, 24),
            np.full(n, 5),
            np.full(n, -24),
            np.full(n, -5),
            fp,
            fbp,
            fm,
            fbm,
        ],
        axis=1,
    )
    mother = np.tile(np.array([-1, -1, 0, 0, 1, 1, 2, 2, 4, 4]), (n, 1))
    status = np.tile(np.array([22, 22, 22, 23, 22, 23, 23, 23, 23, 23]), (n, 1))
    kin = {
        k: np.stack([getattr(p, k) for p in parts], axis=1) for k in ("pt", "eta", "phi", "mass")
    }
    genpart = ak.zip(
        {
            "pt": kin["pt"].astype(np.float32),
            "eta": kin["eta"].astype(np.float32),
            "phi": kin["phi"].astype(np.float32),
            "mass": kin["mass"].astype(np.float32),
            "pdgId": pdg.astype(np.int32),
            "status": status.astype(np.int32),
            "statusFlags": np.full((n, 10), HARD_FLAGS, dtype=np.int32),
            "genPartIdxMother": mother.astype(np.int32),
        },
        with_name="Momentum4D",
    )
    genpart = ak.to_packed(ak.from_regular(genpart, axis=1))

    # ---- particle and detector level from the 4 quarks + ISR jets
    apdg = np.abs(pdg)
    is_q = (apdg <= 5) & (np.arange(10) >= 3)
    is_lep = (apdg == 11) | (apdg == 13)
    is_nu = (apdg == 12) | (apdg == 14) | (apdg == 16)
    n_isr = 3
    isr_pt = 20 + rng.exponential(25.0, (n, n_isr))
    isr_on = rng.random((n, n_isr)) < np.array([0.7, 0.35, 0.15])
    isr_eta = rng.normal(0, 1.8, (n, n_isr))
    isr_phi = rng.uniform(-np.pi, np.pi, (n, n_isr))
    q_pt = kin["pt"][:, 3:]
    j_pt = np.concatenate([q_pt * rng.normal(0.95, 0.08, q_pt.shape), isr_pt], axis=1)
    j_eta = np.concatenate([kin["eta"][:, 3:], isr_eta], axis=1)
    j_phi = np.concatenate([kin["phi"][:, 3:], isr_phi], axis=1)
    j_m = np.concatenate([np.maximum(kin["mass"][:, 3:], 0) + 0.12 * q_pt, 0.1 * isr_pt], axis=1)
    j_flav = np.concatenate(
        [
            np.where(apdg[:, 3:] == 5, 5, np.where(apdg[:, 3:] == 4, 4, 0)),
            np.zeros((n, n_isr), int),
        ],
        axis=1,
    )
    j_keep = np.concatenate([is_q[:, 3:], isr_on], axis=1) & (j_pt > 20) & (np.abs(j_eta) < 4.7)
    order = np.argsort(-np.where(j_keep, j_pt, -1), axis=1, kind="stable")
    smear = rng.normal(1.0, 0.1, j_pt.shape)
    tag_p = np.where(j_flav == 5, 0.75, np.where(j_flav == 4, 0.2, 0.01))
    jets = {
        "pt": _jagged((j_pt * smear).astype(np.float32), j_keep, order),
        "eta": _jagged(
            (j_eta + rng.normal(0, 0.02, j_eta.shape)).astype(np.float32), j_keep, order
        ),
        "phi": _jagged(j_phi.astype(np.float32), j_keep, order),
        "mass": _jagged((j_m * smear).astype(np.float32), j_keep, order),
        "btagged": _jagged(rng.random(j_pt.shape) < tag_p, j_keep, order),
        "hadronFlavour": _jagged(j_flav.astype(np.int32), j_keep, order),
    }
    gen_jets = {
        "pt": _jagged(j_pt.astype(np.float32), j_keep, order),
        "eta": _jagged(j_eta.astype(np.float32), j_keep, order),
        "phi": _jagged(j_phi.astype(np.float32), j_keep, order),
        "mass": _jagged(j_m.astype(np.float32), j_keep, order),
        "hadronFlavour": _jagged(j_flav.astype(np.int32), j_keep, order),
    }
    # charged leptons (e/mu only), at most 2 per event
    lpt, leta, lphi = (np.where(is_lep, kin[k], 0) for k in ("pt", "eta", "phi"))
    lpdg = np.where(is_lep, pdg, 0)
    ele = (np.abs(lpdg) == 11) & (lpt > 10)
    muo = (np.abs(lpdg) == 13) & (lpt > 10)
    ident = np.tile(np.arange(10), (n, 1))

    def leptons(sel: np.ndarray, code: int, iso_name: str) -> dict[str, ak.Array]:
        res = rng.normal(1.0, 0.02, lpt.shape)
        return {
            "pt": _jagged((lpt * res).astype(np.float32), sel, ident),
            "eta": _jagged(leta.astype(np.float32), sel, ident),
            "phi": _jagged(lphi.astype(np.float32), sel, ident),
            "mass": _jagged(np.full(lpt.shape, _MASS[code], np.float32), sel, ident),
            "charge": _jagged((-np.sign(lpdg)).astype(np.int32), sel, ident),
            "pdgId": _jagged(lpdg.astype(np.int32), sel, ident),
            iso_name: _jagged(rng.exponential(0.03, lpt.shape).astype(np.float32), sel, ident),
        }

    nu_px = np.where(is_nu, kin["pt"] * np.cos(kin["phi"]), 0).sum(axis=1)
    nu_py = np.where(is_nu, kin["pt"] * np.sin(kin["phi"]), 0).sum(axis=1)
    met_px = nu_px + rng.normal(0, 9.0, n)
    met_py = nu_py + rng.normal(0, 9.0, n)
    dressed = is_lep & (lpt > 0)
    events = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.zeros(n, dtype=np.uint32),
        "event": np.arange(first_event, first_event + n, dtype=np.uint64),
        "genWeight": np.ones(n, dtype=np.float32),
        "Jet": ak.zip(jets, with_name="Momentum4D"),
        "Electron": ak.zip(leptons(ele, 11, "pfRelIso03_all"), with_name="Momentum4D"),
        "Muon": ak.zip(leptons(muo, 13, "pfRelIso04_all"), with_name="Momentum4D"),
        "MET": ak.zip(
            {
                "pt": np.hypot(met_px, met_py).astype(np.float32),
                "phi": np.arctan2(met_py, met_px).astype(np.float32),
            },
            with_name="Momentum2D",
        ),
        "GenPart": genpart,
        "GenJet": ak.zip(gen_jets, with_name="Momentum4D"),
        "GenDressedLepton": ak.zip(
            {
                "pt": _jagged(lpt.astype(np.float32), dressed, ident),
                "eta": _jagged(leta.astype(np.float32), dressed, ident),
                "phi": _jagged(lphi.astype(np.float32), dressed, ident),
                "mass": _jagged(_mass_of(lpdg).astype(np.float32), dressed, ident),
                "pdgId": _jagged(lpdg.astype(np.int32), dressed, ident),
            },
            with_name="Momentum4D",
        ),
        "GenMET": ak.zip(
            {
                "pt": np.hypot(nu_px, nu_py).astype(np.float32),
                "phi": np.arctan2(nu_py, nu_px).astype(np.float32),
            },
            with_name="Momentum2D",
        ),
    }
    return ak.zip(events, depth_limit=1)


def nanoaod_history(events: ak.Array, *, status_flags: bool = True, seed: int = 1) -> ak.Array:
    """Replace the 10-entry ``GenPart`` with a NanoAOD-like shower history (22 entries).

    Layout per event: 2 incoming gluons; t, t̄ (hard); two recoil copies of each top
    (momenta changed by a few GeV, the last one decays); W and b (hard) from the last top
    copy; a recoil copy of each W whose daughters are the hard W daughters; a shower copy
    of the b; a shower gluon with a gluon-splitting b and a non-prompt electron from the
    b copy. Hard-process entries keep their momenta, so :func:`parton_targets` must give
    the same result as on the 10-entry record. Copies are *not* flagged ``isHardProcess``.
    """
    rng = np.random.default_rng(seed)
    gp = events.GenPart
    n = len(gp)
    cols = {
        k: ak.to_numpy(gp[k]).reshape(n, 10) if n else np.zeros((0, 10))
        for k in ("pt", "eta", "phi", "mass", "pdgId", "status", "statusFlags", "genPartIdxMother")
    }

    def jitter(i: int, scale: float = 3.0) -> dict[str, np.ndarray]:
        return {
            "pt": cols["pt"][:, i] + rng.normal(0, scale, n),
            "eta": cols["eta"][:, i],
            "phi": cols["phi"][:, i],
            "mass": cols["mass"][:, i],
        }

    rows: list[tuple[dict[str, np.ndarray], int | np.ndarray, int, int, int]] = []

    def add(
        kin: dict[str, np.ndarray], pdg: int | np.ndarray, status: int, mother: int, flags: int
    ) -> int:
        rows.append((kin, pdg, status, mother, flags))
        return len(rows) - 1

    def orig(i: int) -> dict[str, np.ndarray]:
        return {k: cols[k][:, i] for k in ("pt", "eta", "phi", "mass")}

    beam = {"pt": np.zeros(n), "eta": np.full(n, 1e3), "phi": np.zeros(n), "mass": np.zeros(n)}
    g1 = add(beam, 21, 21, -1, HARD_FLAGS)
    add({**beam, "eta": -beam["eta"]}, 21, 21, -1, HARD_FLAGS)
    t = add(orig(0), 6, 22, g1, HARD_FLAGS & ~_LAST)
    tb = add(orig(1), -6, 22, g1, HARD_FLAGS & ~_LAST)
    t2 = add(jitter(0), 6, 44, t, _FROM_HARD)
    tb2 = add(jitter(1), -6, 44, tb, _FROM_HARD)
    t3 = add(jitter(0, 5.0), 6, 62, t2, _FROM_HARD | _LAST)
    tb3 = add(jitter(1, 5.0), -6, 62, tb2, _FROM_HARD | _LAST)
    wp = add(orig(2), 24, 22, t3, HARD_FLAGS & ~_LAST)
    b = add(orig(3), 5, 23, t3, HARD_FLAGS & ~_LAST)
    wm = add(orig(4), -24, 22, tb3, HARD_FLAGS & ~_LAST)
    add(orig(5), -5, 23, tb3, HARD_FLAGS & ~_LAST)
    wp2 = add(jitter(2), 24, 52, wp, _FROM_HARD | _LAST)
    wm2 = add(jitter(4), -24, 52, wm, _FROM_HARD | _LAST)
    for i, m in ((6, wp2), (7, wp2), (8, wm2), (9, wm2)):
        add(orig(i), cols["pdgId"][:, i], 23, m, HARD_FLAGS)
    b2 = add(jitter(3), 5, 71, b, _FROM_HARD | _LAST)
    g = add(jitter(3, 10.0), 21, 51, t3, _FROM_HARD)
    add(jitter(3, 10.0), 5, 51, g, _FROM_HARD | _FIRST | _LAST)
    add(jitter(3, 10.0), 11, 1, b2, _FIRST | _LAST)
    k = len(rows)
    perm = rng.permutation(k)  # new position -> old row: positions carry no meaning
    new_pos = np.argsort(perm)
    out = {
        key: np.stack([np.asarray(r[0][key], np.float32) for r in rows], axis=1)
        for key in ("pt", "eta", "phi", "mass")
    }
    out["pdgId"] = np.stack([np.broadcast_to(r[1], (n,)) for r in rows], axis=1).astype(np.int32)
    out["status"] = np.tile(np.array([r[2] for r in rows], np.int32), (n, 1))
    mothers = np.array([r[3] for r in rows])
    mothers = np.where(mothers >= 0, new_pos[np.maximum(mothers, 0)], -1)
    out["genPartIdxMother"] = np.tile(mothers.astype(np.int32), (n, 1))
    if status_flags:
        out["statusFlags"] = np.tile(np.array([r[4] for r in rows], np.int32), (n, 1))
    out = {key: v[:, perm].reshape(n, k) for key, v in out.items()}
    new = ak.to_packed(ak.from_regular(ak.zip(out, with_name="Momentum4D"), axis=1))
    return ak.with_field(events, new, "GenPart")


def _type_of(v: Any) -> Any:
    return v.dtype if isinstance(v, np.ndarray) else v.type.content


def write_root(
    path: str,
    events: ak.Array,
    *,
    layout: Literal["nanoaod", "delphes"] = "nanoaod",
    tree: str | None = None,
    basket_size: int | None = None,
    compression: str | None = None,
) -> None:
    """Write events (as from :func:`toy_events`) to a ROOT file with ``uproot``.

    ``layout="nanoaod"`` writes the hepvld/NanoAOD branch names (``nJet``, ``Jet_pt``, ...)
    into tree ``Events``; ``"delphes"`` writes Delphes-style branches (``Jet_size``,
    ``Jet.PT``, ``Particle.PID``, ``Event.Number`` as length-1 lists, ...) into ``Delphes``.
    ``basket_size`` (NanoAOD layout): entries per basket (default: one basket), as real
    files have several. ``compression``: as ``python -m hepvld.generate --compression``
    (``"zstd:5"``, the generator's default, ``"zlib:1"``, ...; default: uproot's, zlib 1).
    """
    import uproot

    opts: dict[str, Any] = {}
    if compression is not None:  # "name:level" (hepvld.generate.writer needs fastjet)
        name, _, level = compression.partition(":")
        algorithms = {"zstd": uproot.ZSTD, "lz4": uproot.LZ4, "zlib": uproot.ZLIB}
        opts["compression"] = algorithms[name](int(level or 1))

    if layout == "nanoaod":
        data: dict[str, Any] = {}
        for name in events.fields:
            col = events[name]
            if name in ("MET", "GenMET"):
                for f in col.fields:
                    data[f"{name}_{f}"] = ak.to_numpy(col[f])
            elif col.ndim > 1:
                data[name] = ak.zip({f: col[f] for f in col.fields})
            else:
                data[name] = ak.to_numpy(col)
        step = basket_size or max(len(events), 1)
        with uproot.recreate(path, **opts) as f:
            f.mktree(tree or "Events", {k: _type_of(v) for k, v in data.items()})
            for lo in range(0, max(len(events), 1), step):
                f[tree or "Events"].extend({k: v[lo : lo + step] for k, v in data.items()})
        return
    one = ak.unflatten
    ev = events
    ones = np.ones(len(ev), dtype=np.int64)
    gp = ev.GenPart
    data = {
        "Event": ak.zip(
            {
                "Number": one(ak.values_astype(ev.event, np.int64), ones),
                "Weight": one(ev.genWeight, ones),
            }
        ),
        "Jet": ak.zip(
            {
                "PT": ev.Jet.pt,
                "Eta": ev.Jet.eta,
                "Phi": ev.Jet.phi,
                "Mass": ev.Jet.mass,
                "BTag": ak.values_astype(ev.Jet.btagged, np.uint32),
                "Flavor": ak.values_astype(ev.Jet.hadronFlavour, np.uint32),
            }
        ),
        "Electron": ak.zip(
            {
                "PT": ev.Electron.pt,
                "Eta": ev.Electron.eta,
                "Phi": ev.Electron.phi,
                "Charge": ev.Electron.charge,
                "IsolationVar": ev.Electron.pfRelIso03_all,
            }
        ),
        "Muon": ak.zip(
            {
                "PT": ev.Muon.pt,
                "Eta": ev.Muon.eta,
                "Phi": ev.Muon.phi,
                "Charge": ev.Muon.charge,
                "IsolationVar": ev.Muon.pfRelIso04_all,
            }
        ),
        "MissingET": ak.zip(
            {
                "MET": one(ev.MET.pt, ones),
                "Eta": one(ev.MET.pt * 0, ones),
                "Phi": one(ev.MET.phi, ones),
            }
        ),
        "Particle": ak.zip(
            {
                "PID": gp.pdgId,
                "Status": gp.status,
                "M1": gp.genPartIdxMother,
                "M2": gp.genPartIdxMother * 0 - 1,
                "PT": gp.pt,
                "Eta": gp.eta,
                "Phi": gp.phi,
                "Mass": gp.mass,
            }
        ),
        "GenJet": ak.zip(
            {"PT": ev.GenJet.pt, "Eta": ev.GenJet.eta, "Phi": ev.GenJet.phi, "Mass": ev.GenJet.mass}
        ),
        "GenMissingET": ak.zip({"MET": one(ev.GenMET.pt, ones), "Phi": one(ev.GenMET.phi, ones)}),
    }
    with uproot.recreate(path, **opts) as f:
        types = {k: _type_of(v) for k, v in data.items()}
        f.mktree(
            tree or "Delphes",
            types,
            field_name=lambda o, i: f"{o}.{i}",
            counter_name=lambda c: f"{c}_size",
        )
        f[tree or "Delphes"].extend(data)
