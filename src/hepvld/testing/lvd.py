"""Write small files in the VL-VLD R&D dataset's HDF5 layout (:mod:`hepvld.io.lvd`) for tests.

The layout written is the one the reader expects (verified parts and assumptions are
listed in :mod:`hepvld.io.lvd`); the content comes from synthetic events
(:func:`hepvld.testing.synthetic.toy_events`).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

__all__ = ["write_lvd"]


def _padded(coll: ak.Array, fields: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """Jagged collection -> ``{name: (S, n)}`` arrays plus ``mask``."""
    from hepvld.features.detector import pad

    counts = np.asarray(ak.to_numpy(ak.num(coll, axis=1)))
    out = {"mask": np.arange(n)[None, :] < np.minimum(counts, n)[:, None]}
    for name, values in fields.items():
        out[name] = pad(values, n, dtype=np.float32)
    return out


def write_lvd(path: str, events: ak.Array, *, max_jets: int = 16, max_leptons: int = 2) -> None:
    """Write ``events`` (as from :func:`~hepvld.testing.synthetic.toy_events`, 10-entry
    ``GenPart``) as a VL-VLD-layout HDF5 file at ``path``."""
    import h5py

    def objects(coll: ak.Array, n: int, extra: dict[str, Any]) -> dict[str, np.ndarray]:
        return _padded(
            coll,
            {"pt": coll.pt, "eta": coll.eta, "phi": coll.phi, "e": coll.E, **extra},
            n,
        )

    gp = events.GenPart
    S = len(events)
    cols = {k: ak.to_numpy(gp[k]).reshape(S, -1) for k in ("pt", "eta", "phi", "mass", "pdgId")}
    # W+ in toy_events: (nu or up, l+ or dbar); the dataset's d1 is the lepton / first quark
    wp_nu_first = np.isin(np.abs(cols["pdgId"][:, 6]), (12, 14, 16))
    wp_d1 = np.where(wp_nu_first, 7, 6)
    wp_d2 = np.where(wp_nu_first, 6, 7)
    rows = np.arange(S)

    def parton(idx: Any) -> dict[str, np.ndarray]:
        ix = np.broadcast_to(idx, (S,))
        pt, eta, phi, m = (
            cols[k][rows, ix].astype(np.float64) for k in ("pt", "eta", "phi", "mass")
        )
        e = np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
        return {
            "pt": pt[:, None],
            "eta": eta[:, None],
            "phi": phi[:, None],
            "e": e[:, None],
            "pid": cols["pdgId"][rows, ix].astype(np.int32)[:, None],
        }

    partons = {
        "top": {"particle": parton(0), "d1": parton(3), "d2": parton(2)},
        "antitop": {"particle": parton(1), "d1": parton(5), "d2": parton(4)},
        "Wp": {"particle": parton(2), "d1": parton(wp_d1), "d2": parton(wp_d2)},
        "Wm": {"particle": parton(4), "d1": parton(8), "d2": parton(9)},
    }
    levels = {
        "recolevel": {
            "jets": objects(
                events.Jet, max_jets, {"btag": ak.values_astype(events.Jet.btagged, np.int32)}
            ),
            "electrons": objects(events.Electron, max_leptons, {"charge": events.Electron.charge}),
            "muons": objects(events.Muon, max_leptons, {"charge": events.Muon.charge}),
            "met": {"met": ak.to_numpy(events.MET.pt), "phi": ak.to_numpy(events.MET.phi)},
        },
        "particlelevel": {
            "jets": objects(
                events.GenJet,
                max_jets,
                {"btag": ak.values_astype(events.GenJet.hadronFlavour == 5, np.int32)},
            ),
            "electrons": objects(
                events.GenDressedLepton[abs(events.GenDressedLepton.pdgId) == 11],
                max_leptons,
                {},
            ),
            "muons": objects(
                events.GenDressedLepton[abs(events.GenDressedLepton.pdgId) == 13],
                max_leptons,
                {},
            ),
            "met": {"met": ak.to_numpy(events.GenMET.pt), "phi": ak.to_numpy(events.GenMET.phi)},
        },
    }
    with h5py.File(path, "w") as f:
        for level, groups in levels.items():
            for name, data in groups.items():
                g = f.create_group(f"{level}/{name}")
                for k, v in data.items():
                    g.create_dataset(k, data=np.asarray(v))
        for name, subs in partons.items():
            for sub, data in subs.items():
                g = f.create_group(f"partonlevel/{name}/{sub}")
                for k, v in data.items():
                    g.create_dataset(k, data=v)
        f.create_dataset("weight", data=ak.to_numpy(events.genWeight).astype(np.float32))
