"""Pseudo-top mass peaks on the true particle level of a generated file (a sanity check).

Usage::

    python -m hepvld.generate -n 3000 --seed 7 --no-mpi -o gen.root   # or any file with GenJet
    python benchmarks/check_particle_pseudotop.py gen.root

Applies the particle level's truth selection, builds the particle-level objects and the
true neutrino and prints, per pseudo-top candidate, the median, the 5 GeV mode bin and the
16-84 % range of its mass, and the fraction of events with a valid assignment.
"""

from __future__ import annotations

import argparse

import awkward as ak
import numpy as np

from hepvld.features.particle_level import event_truth, truth_objects, truth_selection
from hepvld.features.particle_pseudotop import pseudo_top
from hepvld.io import open_events


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file")
    args = p.parse_args()
    ev = open_events(args.file)
    ev = ev[truth_selection(ev).passed]
    nu = event_truth(ev)["nu"]
    event = ak.zip(
        {
            "met": np.hypot(nu[:, 0], nu[:, 1]),
            "met_phi": np.arctan2(nu[:, 1], nu[:, 0]),
            "nu": ak.zip(
                {"px": nu[:, 0], "py": nu[:, 1], "pz": nu[:, 2], "E": nu[:, 3]},
                with_name="Momentum4D",
            ),
        },
        depth_limit=1,
    )
    out = pseudo_top(truth_objects(ev), event)
    valid = ak.to_numpy(out.valid)
    for name in ("t_had", "t_lep", "W_had", "W_lep"):
        m = ak.to_numpy(out[name].mass)[valid]
        h, e = np.histogram(m, bins=np.arange(0.0, 400.0, 5.0))
        lo, hi = np.percentile(m, [16, 84])
        print(
            f"{name:6s} median {np.median(m):6.1f}  mode bin {e[h.argmax()]:.0f}-"
            f"{e[h.argmax() + 1]:.0f}  16-84 %: {lo:.1f}-{hi:.1f} GeV"
        )
    print(f"valid assignment in {valid.mean():.2%} of {len(valid)} events")


if __name__ == "__main__":
    main()
