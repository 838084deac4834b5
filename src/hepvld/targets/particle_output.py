"""What the ``particle`` level gives its users: records, output branches, feature tables.

:class:`~hepvld.targets.particle.ParticleLevel` delegates its ``to_records``,
``output_branches``, ``output_collections`` and ``feature_table`` methods here. Input is
always the level's padded layout in physical units: ``values (..., K, H)`` with
``mask (..., K)``, slot 0 the event slot ``(MET, sin φ, cos φ, ν px, py, pz, E, 0, 0)``,
slots ``1..K-1`` the objects ``(px, py, pz, log(E+1), log(M+1), one-hot type)``.

Records (:func:`to_records`)
    Per event (or per draw) ``{"objects": var * Momentum4D, "event": {met, met_phi, nu}}``.
    Objects carry ``px, py, pz, mass`` (``mass = exp(log(M+1)) - 1`` clipped to
    [0, 13 TeV], so
    ``E = sqrt(p² + M²)``: the predicted ``log(E+1)`` is not used, as the parton level's
    on-shell convention) and ``type``, an ``int8`` index into
    :data:`~hepvld.targets.particle.OBJECT_TYPES` (the argmax of the type columns), and
    are **sorted by decreasing pT** of the record (``objects[..., 0]`` is the leading
    object). ``nu`` is ``(px, py, pz, E)`` as drawn.

Output files (:func:`output_branches`, :func:`output_collections`)
    See ``docs/particle-level.md``: per draw ``Draw_met``, ``Draw_met_phi``,
    ``Draw_nu_{pt,eta,phi,mass}``, ``Draw_nObject``; all objects of all draws of an event in
    one NanoAOD-style collection ``Object_{pt,eta,phi,mass,type,draw}``, draw by draw.

Evaluation features (:func:`feature_table`, :func:`feature_labels`)
    One row per event (or draw), NaN where a quantity does not exist (an absent object, no
    pseudo-top): multiplicities, the event vector, the four leading objects, the leading
    objects of each type, and the particle-level pseudo-top
    (:func:`hepvld.features.particle_pseudotop.pseudo_top`).

Shapes: ``B`` events, ``S`` draws, ``K = 1 + max_objects`` slots, ``H = 9`` features.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
import vector

from hepvld.physics.kinematics import LOG_E_MAX

vector.register_awkward()

__all__ = [
    "EVENT_KINDS",
    "MULTIPLICITIES",
    "OBJECT_KINDS",
    "PSEUDO_TOP_KINDS",
    "PSEUDO_TOP_PARTICLES",
    "RANKED_OBJECTS",
    "TYPED_OBJECTS",
    "feature_groups",
    "feature_labels",
    "feature_table",
    "object_values",
    "output_branches",
    "output_collections",
    "to_records",
    "with_pseudo_top",
]

#: Multiplicity columns of the feature table.
MULTIPLICITIES: tuple[str, ...] = ("n_objects", "n_jets", "n_bjets", "n_light_jets", "n_leptons")
#: Event-vector columns (``nu_*`` of the neutrino).
EVENT_KINDS: tuple[str, ...] = ("met", "met_phi", "nu_px", "nu_py", "nu_pz", "nu_E")
#: Quantities of each ranked / typed object in the feature table.
OBJECT_KINDS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "px", "py", "pz", "logE")
#: Leading objects of any type, by pT rank (``obj1`` the leading one).
RANKED_OBJECTS: int = 4
#: ``(name, type indices, rank)``: the leading objects of each kind.
TYPED_OBJECTS: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("bjet1", (0,), 0),
    ("bjet2", (0,), 1),
    ("light1", (1,), 0),
    ("light2", (1,), 1),
    ("lepton", (2, 3), 0),
)
#: Pseudo-top particles and their quantities in the feature table.
PSEUDO_TOP_PARTICLES: tuple[str, ...] = ("t_had", "t_lep", "W_had", "W_lep", "ttbar")
PSEUDO_TOP_KINDS: tuple[str, ...] = ("mass", "pt", "rapidity")

_JET_TYPES = (0, 1)
_LEPTON_TYPES = (2, 3)


# ---------------------------------------------------------------------------- helpers
def _constants() -> tuple[int, slice]:
    from hepvld.targets.particle import EVENT_SLOT, TYPE_COLUMNS

    return EVENT_SLOT, TYPE_COLUMNS


def _check(level: Any, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    k, h = level.shape
    if values.ndim < 3 or values.shape[-2:] != (k, h) or mask.shape != values.shape[:-1]:
        raise ValueError(
            f"particle level: values (..., {k}, {h}) and mask (..., {k}) expected, got "
            f"{values.shape} and {mask.shape}"
        )
    return np.where(mask[..., None], values, 0.0), mask


def _sorted_objects(values: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Object kinematics of ``values (N, K, H)``, sorted by decreasing pT per row.

    Returns ``(N, K-1)`` arrays ``px, py, pz, mass, logE, pt, type`` and ``mask``
    (real objects first)."""
    event_slot, type_cols = _constants()
    obj = np.delete(values, event_slot, axis=-2)
    m = np.delete(mask, event_slot, axis=-1)
    px, py, pz = obj[..., 0], obj[..., 1], obj[..., 2]
    pt = np.hypot(px, py)
    order = np.argsort(np.where(m, -pt, np.inf), axis=-1, kind="stable")

    def take(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, order, axis=-1)

    mass = np.maximum(np.expm1(np.minimum(obj[..., 4], LOG_E_MAX)), 0.0)
    # the energy of the records (on shell with the object's own mass), not the network's
    # redundant log(E+1) column, which no output uses
    log_e = np.log1p(np.sqrt(px**2 + py**2 + pz**2 + mass**2))
    return {
        "px": take(px),
        "py": take(py),
        "pz": take(pz),
        "logE": take(log_e),
        "mass": take(mass),
        "pt": take(pt),
        "type": take(np.argmax(obj[..., type_cols], axis=-1)).astype(np.int8),
        "mask": take(m),
    }


def _event(values: np.ndarray) -> dict[str, np.ndarray]:
    """Event-slot quantities of ``values (N, K, H)``: ``met, met_phi, nu_{px,py,pz,E}``."""
    ev = values[..., _constants()[0], :]
    return {
        "met": ev[..., 0],
        "met_phi": np.arctan2(ev[..., 1], ev[..., 2]),
        "nu_px": ev[..., 3],
        "nu_py": ev[..., 4],
        "nu_pz": ev[..., 5],
        "nu_E": ev[..., 6],
    }


# ---------------------------------------------------------------------------- records
def to_records(level: Any, values: np.ndarray, mask: np.ndarray) -> ak.Array:
    """Physical ``values (B, [S,] K, H)`` with ``mask (B, [S,] K)`` -> awkward records.

    Returns
    -------
    ak.Array
        Length ``B``. Without a draw axis each entry is ``{"objects": var * Momentum4D,
        "event": {met, met_phi, nu}}``; with one it is an ``(S,)`` regular list of such
        records (draw ``s`` of event ``b`` is ``out[b, s]``). Objects have ``px, py, pz,
        mass`` and ``type`` (int8 index into ``OBJECT_TYPES``), sorted by decreasing pT.
    """
    values, mask = _check(level, values, mask)
    lead = values.shape[:-2]
    if len(lead) not in (1, 2):
        raise ValueError(f"values (B, K, H) or (B, S, K, H) expected, got {values.shape}")
    n = int(np.prod(lead))
    flat_v = values.reshape(n, *values.shape[-2:])
    flat_m = mask.reshape(n, mask.shape[-1])
    o = _sorted_objects(flat_v, flat_m)
    counts = o["mask"].sum(axis=-1)
    real = o["mask"]

    objects = ak.unflatten(
        ak.zip(
            {
                "px": o["px"][real],
                "py": o["py"][real],
                "pz": o["pz"][real],
                "mass": o["mass"][real],
                "type": o["type"][real],
            },
            with_name="Momentum4D",
        ),
        counts,
    )
    ev = _event(flat_v)
    nu = ak.zip(
        {"px": ev["nu_px"], "py": ev["nu_py"], "pz": ev["nu_pz"], "E": ev["nu_E"]},
        with_name="Momentum4D",
    )
    event = ak.zip({"met": ev["met"], "met_phi": ev["met_phi"], "nu": nu}, depth_limit=1)
    records = ak.zip({"objects": objects, "event": event}, depth_limit=1)
    return _regular(records, lead[1], lead[0]) if len(lead) == 2 else records


def _regular(array: ak.Array, size: int, length: int) -> ak.Array:
    """``array`` of ``length * size`` entries as ``length`` regular lists of ``size``."""
    layout = ak.contents.RegularArray(ak.to_layout(array), size, zeros_length=length)
    return ak.Array(layout, behavior=array.behavior)


def with_pseudo_top(records: ak.Array) -> ak.Array:
    """``records`` of :func:`to_records` (or ``detector_records``), with the particle-level
    pseudo-top (``t_had, t_lep, W_had, W_lep, ttbar``) and the neutrino ``nu`` as top-level
    ``Momentum4D`` fields, so that the parton-named observables (``t_had_mass``,
    ``nu_pt``, ...) of :mod:`hepvld.observables` apply unchanged. Entries without a
    pseudo-top are ``None``. Works with and without a draw axis."""
    from hepvld.features.particle_pseudotop import pseudo_top

    draws = records.ndim == 2  # (B, S) draws: work on the B * S flat records
    flat = ak.flatten(records, axis=1) if draws else records
    tops = pseudo_top(flat.objects, flat.event)
    fields = {name: tops[name] for name in PSEUDO_TOP_PARTICLES}
    out = ak.zip(
        {"objects": flat.objects, "event": flat.event, "nu": flat.event.nu, **fields},
        depth_limit=1,
    )
    if draws:
        size = int(records.type.content.size) if len(records) == 0 else len(records[0])
        out = _regular(out, size, len(records))
    return out


# ---------------------------------------------------------------------------- output files
def _float32(a: ak.Array) -> ak.Array:
    return ak.values_astype(a, np.float32)


def output_branches(level: Any, records: ak.Array) -> dict[str, ak.Array]:
    """Per-draw branches of ``records (B, S)``: ``{name: (B, S)}`` written as ``Draw_<name>``.

    ``met``, ``met_phi``, ``nu_pt``, ``nu_eta``, ``nu_phi``, ``nu_mass`` (float32) and
    ``nObject`` (int32, the number of objects of each draw, which indexes the ``Object``
    collection of :func:`output_collections`)."""
    ev, nu = records.event, records.event.nu
    return {
        "met": ak.from_regular(_float32(ev.met), axis=1),
        "met_phi": ak.from_regular(_float32(ev.met_phi), axis=1),
        "nu_pt": ak.from_regular(_float32(nu.pt), axis=1),
        "nu_eta": ak.from_regular(_float32(nu.eta), axis=1),
        "nu_phi": ak.from_regular(_float32(nu.phi), axis=1),
        "nu_mass": ak.from_regular(_float32(nu.mass), axis=1),
        "nObject": ak.from_regular(ak.values_astype(ak.num(records.objects, axis=2), np.int32)),
    }


def output_collections(level: Any, records: ak.Array) -> dict[str, dict[str, ak.Array]]:
    """Jagged collections of ``records (B, S)``: ``{"Object": {field: (B, var)}}``.

    All objects of all ``S`` draws of an event, draw by draw (draw ``s`` holds
    ``Draw_nObject[s]`` objects in decreasing pT): ``pt, eta, phi, mass`` (float32),
    ``type`` (int8, index into ``OBJECT_TYPES``) and ``draw`` (int32, the draw index)."""
    objects = records.objects
    draw_index = ak.values_astype(ak.local_index(records, axis=1), np.int32)
    draw = ak.broadcast_arrays(draw_index, objects.px)[0]

    def per_event(a: ak.Array) -> ak.Array:
        return ak.flatten(a, axis=2)

    return {
        "Object": {
            "pt": per_event(_float32(objects.pt)),
            "eta": per_event(_float32(objects.eta)),
            "phi": per_event(_float32(objects.phi)),
            "mass": per_event(_float32(objects.mass)),
            "type": per_event(ak.values_astype(objects["type"], np.int8)),
            "draw": per_event(draw),
        }
    }


# ---------------------------------------------------------------------------- features
def feature_groups(level: Any) -> dict[str, list[str]]:
    """Feature-table labels grouped for the report: ``multiplicity``, ``event``,
    ``ranked`` (leading objects), ``typed`` (leading object of each type), ``pseudo_top``."""
    ranked = [f"obj{r + 1}/{k}" for r in range(RANKED_OBJECTS) for k in OBJECT_KINDS]
    typed = [f"{name}/{k}" for name, _, _ in TYPED_OBJECTS for k in OBJECT_KINDS]
    tops = [f"{p}/{k}" for p in PSEUDO_TOP_PARTICLES for k in PSEUDO_TOP_KINDS]
    return {
        "multiplicity": list(MULTIPLICITIES),
        "event": list(EVENT_KINDS),
        "ranked": ranked,
        "typed": typed,
        "pseudo_top": tops,
    }


def feature_labels(level: Any) -> list[str]:
    """Column labels of :func:`feature_table`, e.g. ``n_jets``, ``obj1/pt``, ``t_had/mass``."""
    return [label for group in feature_groups(level).values() for label in group]


def _object_columns(o: dict[str, np.ndarray], sel: np.ndarray, rank: int) -> list[np.ndarray]:
    """The ``rank``-th (0-based) object among ``sel (N, K-1)`` per row, OBJECT_KINDS order."""
    position = np.cumsum(sel, axis=-1) - 1
    hit = sel & (position == rank)
    has = hit.any(axis=-1)
    idx = np.argmax(hit, axis=-1)[:, None]

    def pick(a: np.ndarray) -> np.ndarray:
        return np.where(has, np.take_along_axis(a, idx, axis=-1)[:, 0], np.nan)

    px, py, pz, pt = pick(o["px"]), pick(o["py"]), pick(o["pz"]), pick(o["pt"])
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.arcsinh(pz / pt)
    return [pt, eta, np.arctan2(py, px), pick(o["mass"]), px, py, pz, pick(o["logE"])]


def object_values(
    level: Any, values: np.ndarray, mask: np.ndarray, quantity: str, types: tuple[int, ...]
) -> np.ndarray:
    """``quantity`` (``pt, eta, phi, mass``) of every object whose type index is in
    ``types``, ``(..., K-1)`` in decreasing pT, NaN elsewhere: the entries of inclusive
    per-type distributions."""
    values, mask = _check(level, values, mask)
    lead = values.shape[:-2]
    n = int(np.prod(lead))
    o = _sorted_objects(values.reshape(n, *values.shape[-2:]), mask.reshape(n, mask.shape[-1]))
    sel = o["mask"] & np.isin(o["type"], types)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = {
            "pt": o["pt"],
            "eta": np.arcsinh(o["pz"] / o["pt"]),
            "phi": np.arctan2(o["py"], o["px"]),
            "mass": o["mass"],
        }[quantity]
    return np.where(sel, q, np.nan).reshape(*lead, -1)


def _pseudo_top_columns(values: np.ndarray, mask: np.ndarray, level: Any) -> list[np.ndarray]:
    records = with_pseudo_top(to_records(level, values, mask))
    cols = []
    for p in PSEUDO_TOP_PARTICLES:
        for k in PSEUDO_TOP_KINDS:
            a = getattr(records[p], k)
            cols.append(np.asarray(ak.to_numpy(ak.fill_none(a, np.nan)), dtype=np.float64))
    return cols


def feature_table(level: Any, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(..., C)`` float64 evaluation features of ``values (..., K, H)``, ``mask (..., K)``.

    Columns (:func:`feature_labels`): multiplicities; the event vector (MET, φ_MET, ν px,
    py, pz, E); the four leading objects by pT and the leading b-jets, light jets and
    lepton, each ``pt, eta, phi, mass, px, py, pz, log(E+1)``; pseudo-top ``mass, pt,
    rapidity`` of ``t_had, t_lep, W_had, W_lep, ttbar``. Absent quantities are NaN (the
    distances ignore them column by column).
    """
    values, mask = _check(level, values, mask)
    lead = values.shape[:-2]
    n = int(np.prod(lead))
    v = values.reshape(n, *values.shape[-2:])
    m = mask.reshape(n, mask.shape[-1])
    o = _sorted_objects(v, m)
    real, t = o["mask"], o["type"]
    jets = real & np.isin(t, _JET_TYPES)
    cols: list[np.ndarray] = [
        real.sum(-1),
        jets.sum(-1),
        (real & (t == 0)).sum(-1),
        (real & (t == 1)).sum(-1),
        (real & np.isin(t, _LEPTON_TYPES)).sum(-1),
    ]
    cols += list(_event(v).values())
    for r in range(RANKED_OBJECTS):
        cols += _object_columns(o, real, r)
    for _, types, rank in TYPED_OBJECTS:
        cols += _object_columns(o, real & np.isin(t, types), rank)
    cols += _pseudo_top_columns(v, m, level) if n else [np.zeros(0)] * 15
    table = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=-1)
    return table.reshape(*lead, table.shape[-1])
