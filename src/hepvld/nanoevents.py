"""coffea's ``NanoAODSchema`` for hepvld files, quiet about cross-references.

hepvld's generated files follow NanoAOD's branch names but carry none of its
cross-reference index branches (``Electron_genPartIdx``, ``Muon_jetIdx``, ...: the
collections they point to, such as ``Photon`` or ``Tau``, are not simulated).
``coffea.nanoevents.NanoAODSchema`` then emits one ``"Missing cross-reference index"``
RuntimeWarning per absent index every time it builds the events of a chunk: about two
dozen per chunk. Setting ``NanoAODSchema.warn_missing_crossrefs = False`` in the
analysis script does not reach the worker processes of the futures or dask executors
(they import coffea afresh). :class:`HepvldSchema` is a subclass whose class attribute
says so in its own module, so every process that unpickles the schema gets it::

    from hepvld.nanoevents import HepvldSchema
    runner = processor.Runner(executor=processor.FuturesExecutor(workers=4),
                              schema=HepvldSchema, chunksize=50_000)

Everything else is ``NanoAODSchema`` unchanged (CMS NanoAOD files open the same way).
"""

from __future__ import annotations

from coffea.nanoevents import NanoAODSchema

__all__ = ["HepvldSchema"]


class HepvldSchema(NanoAODSchema):
    """``NanoAODSchema`` without the missing-cross-reference warnings (see the module)."""

    warn_missing_crossrefs = False
