"""Pythia records as flat numpy arrays, and the hard-process tt̄ decay chain.

Two records are read for every event:

- the *event record* (after shower, hadronisation and decays), flattened over a whole
  batch into a :class:`ParticleRecord` with global mother/daughter indices;
- the *hard-process record* (Pythia's ``process``), from which :func:`hard_process`
  extracts the ten-particle decay chain t, t̄, W±, b, b̄ and the W daughters by identity
  and mother links (never by position: indices in ``process`` and ``event`` differ).

From the event record :func:`last_top_copies` takes the *last copies* of t and t̄ (after
ISR recoil, before their decay); :meth:`HardProcess.genpart` appends them to ``GenPart``
as entries 10 and 11 (NanoAOD ``isLastCopy``), so a reader can define the tops after ISR.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from hepvld.generate import kinematics

__all__ = [
    "GENPART_LAST_COPY_FLAGS",
    "GENPART_MOTHERS",
    "GENPART_MOTHERS_WITH_LAST_COPIES",
    "GENPART_STATUS_FLAGS",
    "HardProcess",
    "ParticleRecord",
    "find_decay_chain",
    "hard_process",
    "has_quark",
    "is_hadron",
    "last_top_copies",
    "particle_record",
]

#: ``GenPart_genPartIdxMother`` of the ten chain entries (docs/schema.md).
GENPART_MOTHERS = np.array([-1, -1, 0, 0, 1, 1, 2, 2, 4, 4], dtype=np.int32)
#: NanoAOD statusFlags bits isPrompt(0), isHardProcess(7), fromHardProcess(8),
#: isFirstCopy(12), isLastCopy(13): all set for the hard-process chain.
GENPART_STATUS_FLAGS = (1 << 0) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 13)
#: ``GenPart_genPartIdxMother`` with the last top copies (entries 10, 11): they hang off
#: the hard tops, as W and b do. (NanoAOD would make the last copy the mother of W and b,
#: but entries 0-9 keep their positions and coffea's ``children`` needs every mother
#: before its daughters.)
GENPART_MOTHERS_WITH_LAST_COPIES = np.array([-1, -1, 0, 0, 1, 1, 2, 2, 4, 4, 0, 1], dtype=np.int32)
#: statusFlags of the last top copies (entries 10, 11): isPrompt(0), fromHardProcess(8),
#: isLastCopy(13). With them present the hard-process tops lose isLastCopy.
GENPART_LAST_COPY_FLAGS = (1 << 0) | (1 << 8) | (1 << 13)
#: Pythia status of the last top copies (61-69: after primordial kT / recoil).
LAST_COPY_STATUS = 62

_CHARGED_LEPTONS = (11, 13)
_NEUTRINOS = (12, 14)
_LIGHT_QUARKS = (1, 2, 3, 4, 5)


def is_hadron(pid: NDArray[np.integer]) -> NDArray[np.bool_]:
    """True for PDG ids of mesons and baryons (not quarks, leptons, bosons, diquarks)."""
    a = np.abs(pid)
    core = a % 10000
    return (a >= 100) & (a < 10_000_000) & ((core // 10) % 10 != 0) & ((core // 100) % 10 != 0)


def has_quark(pid: NDArray[np.integer], quark: int) -> NDArray[np.bool_]:
    """True where a quark digit of the PDG id equals ``quark`` (e.g. 5 for b).

    Meaningful for hadron ids only: combine with :func:`is_hadron`.
    """
    core = np.abs(pid) % 10000
    return (
        ((core // 10) % 10 == quark)
        | ((core // 100) % 10 == quark)
        | ((core // 1000) % 10 == quark)
    )


@dataclass(frozen=True, eq=False)
class ParticleRecord:
    """Event records of a batch of B events, flattened to P particles.

    Attributes
    ----------
    offsets : numpy.ndarray of int64, shape (B+1,)
        Particles of event ``b`` are ``offsets[b]:offsets[b+1]``.
    pid, status : numpy.ndarray of int32, shape (P,)
        PDG id and Pythia status code.
    mother1, daughter1, daughter2 : numpy.ndarray of int64, shape (P,)
        Pythia links as *global* indices into the flat arrays, -1 where absent.
    px, py, pz, e : numpy.ndarray of float64, shape (P,)
        Four-momentum [GeV].
    charge : numpy.ndarray of float64, shape (P,)
        Electric charge (units of e).
    """

    offsets: NDArray[np.int64]
    pid: NDArray[np.int32]
    status: NDArray[np.int32]
    mother1: NDArray[np.int64]
    daughter1: NDArray[np.int64]
    daughter2: NDArray[np.int64]
    px: NDArray[np.float64]
    py: NDArray[np.float64]
    pz: NDArray[np.float64]
    e: NDArray[np.float64]
    charge: NDArray[np.float64]

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def counts(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    @cached_property
    def event_index(self) -> NDArray[np.int64]:
        """Event number (0..B-1) of every particle, shape (P,)."""
        return np.repeat(np.arange(self.n_events, dtype=np.int64), self.counts)

    @cached_property
    def pt(self) -> NDArray[np.float64]:
        return kinematics.pt(self.px, self.py)

    @cached_property
    def eta(self) -> NDArray[np.float64]:
        return kinematics.eta(self.px, self.py, self.pz)

    @cached_property
    def phi(self) -> NDArray[np.float64]:
        return kinematics.phi(self.px, self.py)

    @cached_property
    def is_final(self) -> NDArray[np.bool_]:
        """Final-state (stable) particles: positive status."""
        return self.status > 0

    @cached_property
    def is_neutrino(self) -> NDArray[np.bool_]:
        return np.isin(np.abs(self.pid), (12, 14, 16))

    @cached_property
    def is_hadron(self) -> NDArray[np.bool_]:
        """Mesons and baryons (see :func:`is_hadron`)."""
        return is_hadron(self.pid)

    def jagged(self, values: np.ndarray, mask: NDArray[np.bool_]) -> ak.Array:
        """``values[mask]`` as an awkward array with one list per event, shape (B, var)."""
        counts = np.bincount(self.event_index[mask], minlength=self.n_events)
        return ak.unflatten(values[mask], counts)

    def any_in_daughters(self, flag: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """For every particle: is ``flag`` set for any of its daughters?

        Pythia stores daughters as the range ``daughter1..daughter2`` (or only
        ``daughter1``, or the two entries when ``daughter2 < daughter1``).
        """
        cumulative = np.concatenate([[0], np.cumsum(flag, dtype=np.int64)])
        d1, d2 = self.daughter1, self.daughter2
        has1 = d1 >= 0
        last = np.where(d2 >= d1, d2, d1)
        in_range = has1 & (
            cumulative[np.where(has1, last, 0) + 1] - cumulative[np.where(has1, d1, 0)] > 0
        )
        swapped = has1 & (d2 >= 0) & (d2 < d1) & flag[np.where(d2 >= 0, d2, 0)]
        return in_range | swapped


def particle_record(
    events: ak.Array, charge_ids: np.ndarray, charges: np.ndarray
) -> ParticleRecord:
    """Flatten a ``nextBatch`` awkward array into a :class:`ParticleRecord`.

    Parameters
    ----------
    events : awkward.Array
        Records with a ``prt`` list field as returned by ``Pythia.nextBatch``.
    charge_ids, charges : numpy.ndarray
        Sorted PDG ids (covering every id in ``events``) and their charges.
    """
    prt = events["prt"]
    counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = ak.flatten(prt, axis=1)
    base = np.repeat(offsets[:-1], counts)

    def link(name: str) -> NDArray[np.int64]:
        local = ak.to_numpy(flat[name]).astype(np.int64)
        return np.where(local > 0, local + base, -1)

    pid = ak.to_numpy(flat["id"]).astype(np.int32)
    momentum = flat["p"]
    return ParticleRecord(
        offsets=offsets,
        pid=pid,
        status=ak.to_numpy(flat["status"]).astype(np.int32),
        mother1=link("mother1"),
        daughter1=link("daughter1"),
        daughter2=link("daughter2"),
        px=ak.to_numpy(momentum["px"]).astype(np.float64),
        py=ak.to_numpy(momentum["py"]).astype(np.float64),
        pz=ak.to_numpy(momentum["pz"]).astype(np.float64),
        e=ak.to_numpy(momentum["e"]).astype(np.float64),
        charge=charges[np.searchsorted(charge_ids, pid)],
    )


def find_decay_chain(rows: np.ndarray) -> tuple[NDArray[np.int64], int] | None:
    """Locate the semi-leptonic tt̄ decay chain in one hard-process record.

    Parameters
    ----------
    rows : numpy.ndarray, shape (n, 9)
        Hard-process record, columns ``id, status, mother1, mother2, px, py, pz, e, m``
        (:data:`hepvld.generate.pythia.HARD_COLUMNS`); mother indices refer to rows.

    Returns
    -------
    (indices, leptonic_charge) or None
        ``indices`` (10,) are the rows of t, t̄, W⁺, b, W⁻, b̄, W⁺ fermion, W⁺
        antifermion, W⁻ fermion, W⁻ antifermion; ``leptonic_charge`` is the charge of
        the W that decays to e/μ + ν. None if the record holds no such chain.
    """
    ids = rows[:, 0].astype(np.int64)
    status = np.abs(rows[:, 1]).astype(np.int64)
    mother = rows[:, 2].astype(np.int64)

    def unique(mask: NDArray[np.bool_]) -> int | None:
        (where,) = np.nonzero(mask)
        return int(where[0]) if len(where) == 1 else None

    # For t (sign +1) and t̄ (sign -1): the top, its W and b, and the W's two daughters.
    branches: list[tuple[int, int, int, int, int]] = []
    for sign in (1, -1):
        top = unique((ids == 6 * sign) & (status == 22))
        if top is None:
            return None
        w = unique((ids == 24 * sign) & (mother == top))
        b = unique((ids == 5 * sign) & (mother == top))
        if w is None or b is None:
            return None
        (daughters,) = np.nonzero(mother == w)
        if len(daughters) != 2:
            return None
        fermion, antifermion = sorted(daughters.tolist(), key=lambda i: -ids[i])
        branches.append((top, w, b, fermion, antifermion))
    (top, wp, b, wp_f, wp_fbar), (antitop, wm, bbar, wm_f, wm_fbar) = branches
    indices = np.array(
        [top, antitop, wp, b, wm, bbar, wp_f, wp_fbar, wm_f, wm_fbar], dtype=np.int64
    )

    def decay_kind(pair: tuple[int, int]) -> str | None:
        a = sorted(abs(int(ids[i])) for i in pair)
        if a[0] in _CHARGED_LEPTONS and a[1] == a[0] + 1:
            return "lepton"
        if a[0] in _LIGHT_QUARKS and a[1] in _LIGHT_QUARKS:
            return "quark"
        return None

    kinds = (decay_kind((wp_f, wp_fbar)), decay_kind((wm_f, wm_fbar)))
    if kinds == ("lepton", "quark"):
        return indices, 1
    if kinds == ("quark", "lepton"):
        return indices, -1
    return None


@dataclass(frozen=True, eq=False)
class HardProcess:
    """Hard-process decay chains of B events (rows of events without a chain are zero).

    Attributes
    ----------
    valid : numpy.ndarray of bool, shape (B,)
        A semi-leptonic chain was found.
    leptonic_charge : numpy.ndarray of int8, shape (B,)
        +1 / -1: charge of the leptonically decaying W (0 where not valid).
    pdg_id, status : numpy.ndarray of int32, shape (B, 10)
    px, py, pz, e, m : numpy.ndarray of float64, shape (B, 10)
    """

    valid: NDArray[np.bool_]
    leptonic_charge: NDArray[np.int8]
    pdg_id: NDArray[np.int32]
    status: NDArray[np.int32]
    px: NDArray[np.float64]
    py: NDArray[np.float64]
    pz: NDArray[np.float64]
    e: NDArray[np.float64]
    m: NDArray[np.float64]

    def genpart(self, last_tops: NDArray[np.float64] | None = None) -> ak.Array:
        """The ``GenPart`` collection with NanoAOD field names: (B, 10) hard-process
        entries, or (B, 12) with the last copies of t and t̄ appended.

        Parameters
        ----------
        last_tops : numpy.ndarray of float64, shape (B, 2, 4), optional
            ``(px, py, pz, e)`` of the last copies of t and t̄ (:func:`last_top_copies`);
            entries 10 and 11 (status 62, mothers 0 and 1, flags
            :data:`GENPART_LAST_COPY_FLAGS`; mothers
            :data:`GENPART_MOTHERS_WITH_LAST_COPIES`). Rows of events without a chain
            are zero.

        Raises
        ------
        RuntimeError
            An event with a chain has no last top copy (NaN row).
        """
        n = len(self.valid)
        px, py, pz, m = self.px, self.py, self.pz, self.m
        pdg, status = self.pdg_id, self.status
        flags = np.full((n, 10), GENPART_STATUS_FLAGS, dtype=np.int32)
        mothers = np.broadcast_to(GENPART_MOTHERS, (n, 10))
        if last_tops is not None:
            last = np.where(self.valid[:, None, None], last_tops, 0.0)
            if np.isnan(last).any():
                raise RuntimeError("an event with a tt̄ chain has no last top copy")
            p2 = (last[..., :3] ** 2).sum(-1)
            px = np.concatenate([px, last[..., 0]], axis=1)
            py = np.concatenate([py, last[..., 1]], axis=1)
            pz = np.concatenate([pz, last[..., 2]], axis=1)
            m = np.concatenate([m, np.sqrt(np.maximum(last[..., 3] ** 2 - p2, 0.0))], axis=1)
            pdg = np.concatenate([pdg, np.broadcast_to([6, -6], (n, 2))], axis=1)
            pdg = np.where(self.valid[:, None], pdg, 0).astype(np.int32)
            status = np.concatenate([status, np.full((n, 2), LAST_COPY_STATUS)], axis=1)
            status = np.where(self.valid[:, None], status, 0).astype(np.int32)
            flags[:, :2] &= ~np.int32(1 << 13)  # the hard tops are no longer last copies
            flags = np.concatenate(
                [flags, np.full((n, 2), GENPART_LAST_COPY_FLAGS, dtype=np.int32)], axis=1
            )
            mothers = np.broadcast_to(GENPART_MOTHERS_WITH_LAST_COPIES, (n, 12))
        fields = {
            "pt": kinematics.pt(px, py),
            "eta": kinematics.eta(px, py, pz),
            "phi": kinematics.phi(px, py),
            "mass": m,
            "pdgId": pdg,
            "status": status,
            "statusFlags": flags,
            "genPartIdxMother": mothers.astype(np.int32),
        }
        return ak.from_regular(
            ak.zip({k: np.ascontiguousarray(v) for k, v in fields.items()}), axis=1
        )


def last_top_copies(rec: ParticleRecord) -> NDArray[np.float64]:
    """``(px, py, pz, e)`` of the last copy of t and of t̄ in each event record.

    The last copy is the top (PDG ±6) none of whose daughters is a top: after ISR recoil
    and the top's own radiation, the one that decays to W b.

    Returns
    -------
    numpy.ndarray of float64, shape (B, 2, 4)
        ``[:, 0]`` t, ``[:, 1]`` t̄; NaN where an event has not exactly one such copy.
    """
    out = np.full((rec.n_events, 2, 4), np.nan)
    momenta = np.stack([rec.px, rec.py, rec.pz, rec.e], axis=-1)
    for k, pid in enumerate((6, -6)):
        top = rec.pid == pid
        ends = np.flatnonzero(top & ~rec.any_in_daughters(top))
        events = rec.event_index[ends]
        once = np.bincount(events, minlength=rec.n_events)[events] == 1
        out[events[once], k] = momenta[ends[once]]
    return out


def hard_process(records: list[np.ndarray]) -> HardProcess:
    """Decay chains of a batch of hard-process records (see :func:`find_decay_chain`)."""
    n = len(records)
    valid = np.zeros(n, dtype=bool)
    charge = np.zeros(n, dtype=np.int8)
    table = np.zeros((n, 10, 6), dtype=np.float64)  # id, status, px, py, pz, e, then m
    masses = np.zeros((n, 10), dtype=np.float64)
    for i, rows in enumerate(records):
        found = find_decay_chain(rows)
        if found is None:
            continue
        indices, charge[i] = found
        valid[i] = True
        chain = rows[indices]
        table[i] = chain[:, [0, 1, 4, 5, 6, 7]]
        masses[i] = chain[:, 8]
    return HardProcess(
        valid=valid,
        leptonic_charge=charge,
        pdg_id=table[:, :, 0].astype(np.int32),
        status=np.abs(table[:, :, 1]).astype(np.int32),
        px=table[:, :, 2],
        py=table[:, :, 3],
        pz=table[:, :, 4],
        e=table[:, :, 5],
        m=masses,
    )
