"""Pythia 8 set-up for semi-leptonic tt̄ and batch generation.

The event record comes out of :meth:`pythia8mc.Pythia.nextBatch` as one awkward array
per batch (filled in C++, no per-particle Python calls). The hard-process record, which
``nextBatch`` does not return, is captured by a small :class:`HardProcessRecorder` user
hook at the end of every successful event (about 15 entries per event).

Note
----
Pythia's internal ``Top:gg2ttbar``/``Top:qqbar2ttbar`` processes decay t and t̄
independently: the sample has **no tt̄ spin correlations** (MadGraph + MadSpin would).
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
import pythia8mc

from hepvld.generate.config import PYTHIA_SEED_MAX, GeneratorSettings

__all__ = [
    "HARD_COLUMNS",
    "HardProcessRecorder",
    "PythiaBatch",
    "generate_batch",
    "make_pythia",
    "pythia_settings",
]

#: Columns of one captured hard-process row.
HARD_COLUMNS: tuple[str, ...] = (
    "id",
    "status",
    "mother1",
    "mother2",
    "px",
    "py",
    "pz",
    "e",
    "m",
)

_LEPTONS = "11 13"
_QUARKS = "1 2 3 4 5"


def pythia_settings(settings: GeneratorSettings, *, seed: int, leptonic_charge: int) -> list[str]:
    """Pythia ``readString`` lines for one chunk.

    Parameters
    ----------
    settings : GeneratorSettings
        Physics switches.
    seed : int
        Pythia seed, 1..900 000 000.
    leptonic_charge : {+1, -1}
        Charge of the W forced to decay to e/μ + ν; the other W decays to quarks.

    Returns
    -------
    list of str
    """
    if not 1 <= seed <= PYTHIA_SEED_MAX:
        raise ValueError(f"Pythia seed must be in 1..{PYTHIA_SEED_MAX}, got {seed}")
    if leptonic_charge not in (1, -1):
        raise ValueError(f"leptonic_charge must be +1 or -1, got {leptonic_charge}")
    pos, neg = (_LEPTONS, _QUARKS) if leptonic_charge > 0 else (_QUARKS, _LEPTONS)
    on = {True: "on", False: "off"}
    return [
        "Print:quiet = on",
        f"Beams:eCM = {settings.ecm:g}",
        *process_settings(settings, pos, neg),
        f"PartonLevel:MPI = {on[settings.mpi]}",
        f"PartonLevel:ISR = {on[settings.isr]}",
        f"PartonLevel:FSR = {on[settings.fsr]}",
        f"HadronLevel:all = {on[settings.hadronisation]}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
    ]


def process_settings(settings: GeneratorSettings, pos: str, neg: str) -> list[str]:
    """The hard process and forced decays of ``settings.process`` (see
    :data:`hepvld.generate.config.PROCESSES`); ``pos``/``neg``: the W⁺/W⁻ decay ids of
    the tt̄ signal (backgrounds decay every W to e/μ ν)."""
    top = [
        f"6:m0 = {settings.top_mass:g}",
        # t -> W b only (Pythia also has the CKM-suppressed t -> W s, W d).
        "6:onMode = off",
        "6:onIfMatch = 5 24",
    ]
    if settings.process == "single-top":
        return [
            "Top:qq2tq(t:W) = on",
            "Top:ffbar2tqbar(s:W) = on",
            *top,
            "24:onMode = off",
            f"24:onIfAny = {_LEPTONS}",
        ]
    if settings.process == "wjets":
        return [
            "WeakBosonAndParton:qqbar2Wg = on",
            "WeakBosonAndParton:qg2Wq = on",
            "PhaseSpace:pTHatMin = 20",
            "24:onMode = off",
            f"24:onIfAny = {_LEPTONS}",
        ]
    return [
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
        *top,
        "24:onMode = off",
        f"24:onPosIfAny = {pos}",
        f"24:onNegIfAny = {neg}",
    ]


class HardProcessRecorder(pythia8mc.UserHooks):
    """User hook that copies Pythia's hard-process record after every good event.

    ``rows`` holds one ``(n, len(HARD_COLUMNS))`` float64 array per successfully
    generated event, in generation order (so it lines up with a ``nextBatch`` taken in
    ``"skip"`` or float error mode).
    """

    def __init__(self) -> None:
        super().__init__()
        self._pythia: pythia8mc.Pythia | None = None
        self.rows: list[np.ndarray] = []

    def attach(self, pythia: pythia8mc.Pythia) -> None:
        """Remember the Pythia instance whose ``process`` record is read."""
        self._pythia = pythia
        pythia.setUserHooksPtr(self)

    def onEndEvent(self, status: pythia8mc.UserHooks.Status) -> None:
        if status != pythia8mc.UserHooks.COMPLETE or self._pythia is None:
            return
        self.rows.append(
            np.array(
                [
                    (
                        p.id(),
                        p.status(),
                        p.mother1(),
                        p.mother2(),
                        p.px(),
                        p.py(),
                        p.pz(),
                        p.e(),
                        p.m(),
                    )
                    for p in self._pythia.process.particles()
                ],
                dtype=np.float64,
            )
        )

    def detach(self) -> None:
        """Forget the Pythia instance (breaks the hook <-> Pythia reference cycle)."""
        self._pythia = None

    def take(self) -> list[np.ndarray]:
        """Return and forget the captured rows."""
        rows, self.rows = self.rows, []
        return rows


def make_pythia(
    settings: GeneratorSettings, *, seed: int, leptonic_charge: int
) -> tuple[pythia8mc.Pythia, HardProcessRecorder]:
    """Create and initialise a quiet Pythia instance with its hard-process recorder."""
    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(settings, seed=seed, leptonic_charge=leptonic_charge):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected setting {line!r}")
    recorder = HardProcessRecorder()
    recorder.attach(pythia)
    if not pythia.init():
        raise RuntimeError("Pythia initialisation failed")
    return pythia, recorder


@dataclass(frozen=True, eq=False)
class PythiaBatch:
    """Raw output of :func:`generate_batch`.

    Attributes
    ----------
    events : awkward.Array
        ``nextBatch`` records (field ``prt``: the full event record), length B.
    hard : list of numpy.ndarray
        B hard-process records, columns :data:`HARD_COLUMNS`.
    charge_ids, charges : numpy.ndarray
        Sorted PDG ids occurring in ``events`` and their electric charges.
    """

    events: ak.Array
    hard: list[np.ndarray]
    charge_ids: np.ndarray
    charges: np.ndarray


def generate_batch(
    pythia: pythia8mc.Pythia, recorder: HardProcessRecorder, n_events: int
) -> PythiaBatch:
    """Generate ``n_events`` events (failed Pythia events are retried, up to 10x)."""
    recorder.take()
    events = pythia.nextBatch(n_events, 10.0)
    hard = recorder.take()
    if len(hard) != len(events):
        raise RuntimeError(
            f"hard-process capture out of step: {len(hard)} records for {len(events)} events"
        )
    ids = np.unique(ak.to_numpy(ak.flatten(events["prt", "id"])))
    data = pythia.particleData
    charges = np.array([data.charge(int(i)) for i in ids], dtype=np.float64)
    return PythiaBatch(events=events, hard=hard, charge_ids=ids, charges=charges)
