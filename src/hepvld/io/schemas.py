"""Declarative schema maps: source layout -> hepvld's NanoAOD-like event records.

One small table per supported layout. Each output collection lists, for every output
field, the source collection and field it is read from; the branch name in a file is
derived from the pair with the schema's separator (``Jet`` + ``pt`` -> ``Jet_pt`` in
NanoAOD, ``Jet`` + ``PT`` -> ``Jet.PT`` in Delphes). The same tables drive reading from
awkward / coffea ``NanoEvents`` arrays (``events[collection][field]``). The tables are
documented, with the rules that complete missing fields, in ``docs/readers.md``.

Field specifications are either a plain source-field name or ``(source_field, converter)``
with a converter from :data:`CONVERTERS` (e.g. ``"bit0"`` for Delphes' ``BTag`` bit mask).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "CONVERTERS",
    "DEEPJET_MEDIUM_WP",
    "DELPHES",
    "ELECTRON_MASS",
    "MUON_MASS",
    "NANOAOD",
    "SCHEMAS",
    "CollectionMap",
    "SchemaMap",
]

#: DeepJet (``Jet_btagDeepFlavB``) medium working point used when a NanoAOD file has no
#: ``Jet_btagged`` branch: CMS BTV recommendation for UL2018 (0.2783, ~1 % light mis-tag).
DEEPJET_MEDIUM_WP: float = 0.2783

#: Lepton masses [GeV] used where the source stores none (Delphes leptons are massless).
ELECTRON_MASS: float = 0.000510999
MUON_MASS: float = 0.1056584

#: Converters usable in field specifications (applied elementwise to the source array).
CONVERTERS: tuple[str, ...] = ("bool", "bit0", "first")

FieldSpec = str | tuple[str, str]


def _frozen(d: Mapping[str, FieldSpec] | None) -> Mapping[str, FieldSpec]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class CollectionMap:
    """How one output collection is read.

    Parameters
    ----------
    source
        Collection name in the source (``"Particle"`` for Delphes' ``GenPart``).
    fields
        Output field -> field specification; all required when the collection is read.
    optional
        Output field -> field specification, read only when present in the source.
    singleton
        One record per event (``MET``); Delphes stores these as length-1 lists, of which
        the first entry is taken.
    required
        The collection must be present (otherwise it is skipped with a log line).
    """

    source: str
    fields: Mapping[str, FieldSpec]
    optional: Mapping[str, FieldSpec] = field(default_factory=dict)
    singleton: bool = False
    required: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _frozen(self.fields))
        object.__setattr__(self, "optional", _frozen(self.optional))
        for spec in (*self.fields.values(), *self.optional.values()):
            if isinstance(spec, tuple) and spec[1] not in CONVERTERS:
                raise ValueError(f"unknown converter {spec[1]!r}; known: {CONVERTERS}")


@dataclass(frozen=True)
class SchemaMap:
    """A source layout: default tree, branch naming and the collection tables.

    Parameters
    ----------
    name
        Schema name (``"nanoaod"``, ``"delphes"``).
    tree
        Default tree name in files of this layout.
    separator
        Joins source collection and field into a branch name.
    collections
        Output collection name -> :class:`CollectionMap`.
    event_fields
        Output per-event field -> ``(source collection or "", field spec)``; these are
        optional (defaults are documented in :func:`hepvld.io.open_events`).
    """

    name: str
    tree: str
    separator: str
    collections: Mapping[str, CollectionMap]
    event_fields: Mapping[str, tuple[str, FieldSpec]]

    def branch(self, collection: str, spec: FieldSpec) -> str:
        """Branch name of ``spec`` in source collection ``collection`` (``""``: top level)."""
        name = spec if isinstance(spec, str) else spec[0]
        return f"{collection}{self.separator}{name}" if collection else name


_P4 = {"pt": "pt", "eta": "eta", "phi": "phi", "mass": "mass"}

#: hepvld's own files and CMS NanoAOD (``Events`` tree, ``Collection_field`` branches).
NANOAOD = SchemaMap(
    name="nanoaod",
    tree="Events",
    separator="_",
    collections=MappingProxyType(
        {
            "Jet": CollectionMap(
                "Jet",
                _P4,
                optional={
                    "btagged": ("btagged", "bool"),
                    "btagDeepFlavB": "btagDeepFlavB",
                    "hadronFlavour": "hadronFlavour",
                    "partonFlavour": "partonFlavour",
                    "genJetIdx": "genJetIdx",
                },
            ),
            "Electron": CollectionMap(
                "Electron",
                _P4,
                optional={
                    "charge": "charge",
                    "pdgId": "pdgId",
                    "pfRelIso03_all": "pfRelIso03_all",
                },
            ),
            "Muon": CollectionMap(
                "Muon",
                _P4,
                optional={"charge": "charge", "pdgId": "pdgId", "pfRelIso04_all": "pfRelIso04_all"},
            ),
            "MET": CollectionMap("MET", {"pt": "pt", "phi": "phi"}, singleton=True),
            "GenPart": CollectionMap(
                "GenPart",
                {**_P4, "pdgId": "pdgId", "genPartIdxMother": "genPartIdxMother"},
                optional={"status": "status", "statusFlags": "statusFlags"},
                required=False,
            ),
            "GenJet": CollectionMap(
                "GenJet", _P4, optional={"hadronFlavour": "hadronFlavour"}, required=False
            ),
            "GenDressedLepton": CollectionMap(
                "GenDressedLepton", {**_P4, "pdgId": "pdgId"}, required=False
            ),
            "GenMET": CollectionMap(
                "GenMET", {"pt": "pt", "phi": "phi"}, singleton=True, required=False
            ),
        }
    ),
    event_fields=MappingProxyType(
        {
            "event": ("", "event"),
            "genWeight": ("", "genWeight"),
            "luminosityBlock": ("", "luminosityBlock"),
        }
    ),
)

_DP4 = {"pt": "PT", "eta": "Eta", "phi": "Phi"}

#: Delphes output (``Delphes`` tree, ``Collection.Field`` branches, ``Particle`` record).
DELPHES = SchemaMap(
    name="delphes",
    tree="Delphes",
    separator=".",
    collections=MappingProxyType(
        {
            "Jet": CollectionMap("Jet", {**_DP4, "mass": "Mass", "btagged": ("BTag", "bit0")}),
            "Electron": CollectionMap(
                "Electron",
                {**_DP4, "charge": "Charge"},
                optional={"pfRelIso03_all": "IsolationVar"},
            ),
            "Muon": CollectionMap(
                "Muon", {**_DP4, "charge": "Charge"}, optional={"pfRelIso04_all": "IsolationVar"}
            ),
            "MET": CollectionMap("MissingET", {"pt": "MET", "phi": "Phi"}, singleton=True),
            "GenPart": CollectionMap(
                "Particle",
                {
                    **_DP4,
                    "mass": "Mass",
                    "pdgId": "PID",
                    "status": "Status",
                    "genPartIdxMother": "M1",
                },
                required=False,
            ),
            "GenJet": CollectionMap("GenJet", {**_DP4, "mass": "Mass"}, required=False),
            "GenMET": CollectionMap(
                "GenMissingET", {"pt": "MET", "phi": "Phi"}, singleton=True, required=False
            ),
        }
    ),
    event_fields=MappingProxyType(
        {"event": ("Event", ("Number", "first")), "genWeight": ("Event", ("Weight", "first"))}
    ),
)

#: Registered schemas by name.
SCHEMAS: Mapping[str, SchemaMap] = MappingProxyType({"nanoaod": NANOAOD, "delphes": DELPHES})
