"""Settings of an event-generation run (a frozen, validated dataclass)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PROCESSES", "PYTHIA_SEED_MAX", "GeneratorSettings"]

#: Processes the generator knows: the signal and two backgrounds of its selection.
#: ``ttbar``: semi-leptonic (e/μ) tt̄; ``single-top``: t- and s-channel single top with
#: t -> W b, W -> e/μ ν (Pythia ``Top:qq2tq(t:W)``, ``Top:ffbar2tqbar(s:W)``); ``wjets``: W + 1 parton
#: (``WeakBosonAndParton:qqbar2Wg, qg2Wq``, ``pTHatMin`` 20 GeV) with W -> e/μ ν.
#: Backgrounds have no tt̄ chain: the selection skips that cut for them, and their
#: ``GenPart`` record is not a parton-level target (``docs/measurement.md``).
PROCESSES: tuple[str, ...] = ("ttbar", "single-top", "wjets")

#: Pythia accepts ``Random:seed`` in 0..900 000 000 (0 means "seed from the clock").
PYTHIA_SEED_MAX = 900_000_000


@dataclass(frozen=True)
class GeneratorSettings:
    """Physics switches and bookkeeping of one generation run.

    Parameters
    ----------
    top_mass : float
        Top-quark pole mass [GeV] (Pythia ``6:m0``).
    ecm : float
        Centre-of-mass energy [GeV].
    mpi, isr, fsr, hadronisation : bool
        Multi-parton interactions, initial- and final-state showers, hadronisation (with
        particle decays). All on for physics; switch off for fast test samples.
    chunk_size : int
        Generated events per chunk. A chunk is the unit of work of one worker, of
        seeding (chunk ``i`` gets seed ``i`` of the run's ``SeedSequence``) and of
        writing (a crash loses at most the chunks in flight).
    select : bool
        Write only events passing the analysis selection (else every event with a
        semi-leptonic decay chain).
    max_jets : int
        Keep at most this many (highest-pT) detector jets per event.
    process : str
        One of :data:`PROCESSES` (default ``ttbar``, the signal).
    """

    top_mass: float = 173.0
    ecm: float = 13_000.0
    mpi: bool = True
    isr: bool = True
    fsr: bool = True
    hadronisation: bool = True
    chunk_size: int = 1000
    select: bool = True
    max_jets: int = 20
    process: str = "ttbar"

    def __post_init__(self) -> None:
        if not 100.0 <= self.top_mass <= 300.0:
            raise ValueError(f"top_mass must be in [100, 300] GeV, got {self.top_mass}")
        if self.ecm <= 2 * self.top_mass:
            raise ValueError(f"ecm={self.ecm} GeV is below the tt̄ threshold")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}, got {self.process!r}")
        if self.max_jets < 4:
            raise ValueError(f"max_jets must be >= 4 (the selection needs 4), got {self.max_jets}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)
