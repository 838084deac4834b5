"""Chunked, seeded, optionally parallel generation into one ROOT file.

A run is a sequence of chunks. Chunk ``i`` always gets the same seeds (child ``i`` of
``numpy.random.SeedSequence(seed)``: one stream for Pythia, one for the detector) and
the same W-charge configuration (``i`` even: the W⁺ decays leptonically), and chunks
are written in index order as soon as they and all earlier ones are done. The file is
therefore identical for any number of workers, and an interruption loses at most the
chunks in flight.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import count as count_from
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from hepvld.generate.config import PYTHIA_SEED_MAX, GeneratorSettings
from hepvld.generate.reconstruction import reconstruct
from hepvld.generate.record import (
    HardProcess,
    ParticleRecord,
    hard_process,
    last_top_copies,
    particle_record,
)
from hepvld.generate.selection import CUTS, Cutflow, selection_stage, stage_cutflow
from hepvld.generate.shards import (
    GenerationResumeError,
    check_same_run,
    journal_path,
    read_chunks,
    read_journal,
    shard_chunks,
    write_journal,
)
from hepvld.generate.truth import particle_level
from hepvld.generate.writer import EventWriter

__all__ = [
    "ChunkResult",
    "ChunkTask",
    "GenerationSummary",
    "chunk_seeds",
    "generate",
    "process_chunk",
]

log = logging.getLogger(__name__)

#: Give up a ``count="selected"`` run when this many chunks wrote nothing at all.
_MAX_EMPTY_CHUNKS = 20


def chunk_seeds(seed: int, index: int) -> tuple[int, np.random.SeedSequence]:
    """Pythia seed (1..900 000 000) and detector seed sequence of chunk ``index``."""
    pythia_sequence, detector_sequence = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(2)
    pythia_seed = int(pythia_sequence.generate_state(1, dtype=np.uint64)[0] % PYTHIA_SEED_MAX) + 1
    return pythia_seed, detector_sequence


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: ``n_events`` generated events of chunk ``index`` of a run."""

    index: int
    n_events: int
    seed: int
    settings: GeneratorSettings

    @property
    def leptonic_charge(self) -> int:
        """Charge of the leptonically decaying W: +1 in even chunks, -1 in odd ones."""
        return 1 if self.index % 2 == 0 else -1


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """Output of :func:`process_chunk`.

    Attributes
    ----------
    index : int
        Chunk index.
    stage : numpy.ndarray of int8, shape (G,)
        Last cut of :data:`~hepvld.generate.selection.CUTS` passed by each generated event.
    written : numpy.ndarray of bool, shape (G,)
        Which generated events are in ``branches`` (in order).
    branches : dict
        Schema branches of the written events.
    cpu_seconds : float
        CPU time of the chunk (Pythia, detector, selection).
    """

    index: int
    stage: NDArray[np.int8]
    written: NDArray[np.bool_]
    branches: dict[str, Any]
    cpu_seconds: float

    @property
    def n_written(self) -> int:
        return int(np.count_nonzero(self.written))

    def head(self, n_written: int) -> tuple[dict[str, Any], Cutflow]:
        """Branches of the first ``n_written`` written events and the cut-flow of the
        generated events up to (and including) the last of them."""
        if n_written >= self.n_written:
            return self.branches, stage_cutflow(self.stage)
        last = int(np.nonzero(self.written)[0][n_written - 1]) if n_written > 0 else -1
        branches = {name: value[:n_written] for name, value in self.branches.items()}
        return branches, stage_cutflow(self.stage[: last + 1])


@dataclass(frozen=True)
class GenerationSummary:
    """What a :func:`generate` run did.

    Attributes
    ----------
    output : pathlib.Path
    n_written : int
        Events in the file.
    cutflow : Cutflow
        Cut-flow of the generated events that were used (see :data:`CUTS`).
    n_chunks : int
        Chunks written (possibly partially, for the last one).
    seed : int
    settings : GeneratorSettings
    wall_seconds : float
    cpu_seconds : float
        CPU time summed over the written chunks (generation, detector, selection).
    complete : bool
        False when the run was interrupted (the file is still readable).
    """

    output: Path
    n_written: int
    cutflow: Cutflow
    n_chunks: int
    seed: int
    settings: GeneratorSettings
    wall_seconds: float
    cpu_seconds: float
    complete: bool = True

    @property
    def n_generated(self) -> int:
        return self.cutflow.total

    @property
    def generated_per_cpu_second(self) -> float:
        return self.n_generated / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def written_per_cpu_second(self) -> float:
        return self.n_written / self.cpu_seconds if self.cpu_seconds else 0.0


def _check_alignment(rec: ParticleRecord, hard: HardProcess) -> None:
    """The hard-process record captured by the hook must belong to the same event:
    Pythia copies the hard-process top (status -22) verbatim into the event record."""
    first_top = (rec.pid == 6) & (rec.status == -22)
    per_event = np.bincount(rec.event_index[first_top], minlength=rec.n_events)
    usable = hard.valid & (per_event == 1)
    event_px = np.zeros(rec.n_events)
    event_px[rec.event_index[first_top]] = rec.px[first_top]
    if not np.array_equal(event_px[usable], hard.px[usable, 0]):
        raise RuntimeError("hard-process records do not line up with the event records")


def _branches(
    task: ChunkTask, rec: ParticleRecord, hard: HardProcess, rng: np.random.Generator
) -> tuple[dict[str, Any], NDArray[np.int8]]:
    truth = particle_level(rec)
    reco = reconstruct(rec, truth, hard, rng, max_jets=task.settings.max_jets)
    # a background has no tt̄ chain to require: that cut passes for every event
    chain = hard.valid if task.settings.process == "ttbar" else np.ones(rec.n_events, bool)
    stage = selection_stage(chain, reco.electrons, reco.muons, reco.jets)
    n = rec.n_events
    gen_jets = truth.jets
    branches: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.full(n, task.index, dtype=np.uint32),
        "event": task.index * task.settings.chunk_size + np.arange(n, dtype=np.uint64),
        "genWeight": np.ones(n, dtype=np.float32),
        "MET_pt": reco.met_pt,
        "MET_phi": reco.met_phi,
        "GenMET_pt": truth.met_pt,
        "GenMET_phi": truth.met_phi,
        "Jet": reco.jets,
        "Electron": reco.electrons,
        "Muon": reco.muons,
        "GenPart": hard.genpart(last_top_copies(rec)),
        "GenJet": ak.zip(
            {
                "pt": ak.unflatten(gen_jets.pt, gen_jets.counts),
                "eta": ak.unflatten(gen_jets.eta, gen_jets.counts),
                "phi": ak.unflatten(gen_jets.phi, gen_jets.counts),
                "mass": ak.unflatten(gen_jets.mass, gen_jets.counts),
                "hadronFlavour": truth.jet_flavour,
            }
        ),
        "GenDressedLepton": truth.dressed_leptons,
    }
    return branches, stage


def process_chunk(task: ChunkTask) -> ChunkResult:
    """Generate, simulate and select one chunk (runs in a worker process)."""
    from hepvld.generate import pythia  # the optional Pythia extra, imported where used

    start = time.process_time()
    pythia_seed, detector_sequence = chunk_seeds(task.seed, task.index)
    instance, recorder = pythia.make_pythia(
        task.settings, seed=pythia_seed, leptonic_charge=task.leptonic_charge
    )
    batch = pythia.generate_batch(instance, recorder, task.n_events)
    recorder.detach()
    del instance, recorder
    rec = particle_record(batch.events, batch.charge_ids, batch.charges)
    hard = hard_process(batch.hard)
    _check_alignment(rec, hard)
    branches, stage = _branches(task, rec, hard, np.random.default_rng(detector_sequence))
    written = stage >= (len(CUTS) - 1 if task.settings.select else 1)
    kept = {name: value[written] for name, value in branches.items()}
    return ChunkResult(task.index, stage, written, kept, time.process_time() - start)


def _tasks(
    n_events: int, count: str, seed: int, settings: GeneratorSettings, chunks: range | None
) -> Iterator[ChunkTask]:
    """Tasks of chunks ``chunks`` (``None``: from 0 on, until enough events are selected)."""
    size = settings.chunk_size
    indices = count_from() if chunks is None else iter(chunks)
    for index in indices:
        n = size if count == "selected" else min(size, n_events - index * size)
        yield ChunkTask(index, n, seed, settings)


def _ignore_sigint() -> None:  # pragma: no cover - runs in worker processes
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _results(tasks: Iterator[ChunkTask], workers: int) -> Generator[ChunkResult, None, None]:
    """Results in chunk order; with ``workers > 1`` at most ``2 * workers`` chunks in flight.

    Closing the iterator (or an exception in the consumer) terminates the pool.
    """
    if workers == 1:
        for task in tasks:
            yield process_chunk(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_ignore_sigint) as pool:
        pending: deque[Any] = deque()
        for task in tasks:
            pending.append(pool.apply_async(process_chunk, (task,)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().get()
            following = next(tasks, None)
            if following is not None:
                pending.append(pool.apply_async(process_chunk, (following,)))
            yield result


def generate(
    output: str | Path,
    n_events: int,
    *,
    seed: int = 0,
    count: Literal["selected", "generated"] = "selected",
    workers: int = 1,
    top_mass: float = 173.0,
    mpi: bool = True,
    isr: bool = True,
    fsr: bool = True,
    hadronisation: bool = True,
    chunk_size: int = 1000,
    select: bool = True,
    max_jets: int = 20,
    process: str = "ttbar",
    compression: str | None = "zstd:5",
    progress: bool = False,
    shard: tuple[int, int] | None = None,
    resume: bool = False,
) -> GenerationSummary:
    """Generate semi-leptonic tt̄ events at 13 TeV into a NanoAOD-flavoured ROOT file.

    Parameters
    ----------
    output : str or pathlib.Path
        ROOT file to (over)write; one TTree ``Events`` (docs/schema.md).
    n_events : int
        Number of events: written (selected) ones for ``count="selected"``, generated
        ones for ``count="generated"``.
    seed : int
        Run seed; same seed and options give an identical file for any ``workers``.
    count : {"selected", "generated"}
        What ``n_events`` counts.
    workers : int
        Worker processes (1: generate in this process).
    top_mass : float
        Top-quark mass [GeV].
    mpi, isr, fsr, hadronisation : bool
        Pythia physics switches (all on for physics; off for fast test samples).
    chunk_size : int
        Generated events per chunk (unit of seeding, parallelism and writing).
    select : bool
        Write only events passing the analysis selection; else every event with a
        semi-leptonic decay chain.
    max_jets : int
        Keep at most this many jets per event.
    process : str
        ``ttbar`` (the signal), ``single-top`` or ``wjets`` (backgrounds, same detector
        and selection; :data:`hepvld.generate.config.PROCESSES`).
    compression : str or None
        e.g. ``"zstd:5"``, ``"lz4:1"``, ``"zlib:6"`` or ``"none"``.
    progress : bool
        Show a tqdm progress bar (on stderr).
    shard : (i, n), optional
        Generate only shard ``i`` of ``n`` (contiguous chunks; needs ``count="generated"``);
        :func:`hepvld.generate.shards.merge_shards` joins the shards into the file a single
        process would write.
    resume : bool
        Continue the killed run of ``output`` (same options) from its journal
        ``<output>.journal.json``: its whole chunks are kept, the rest is generated.

    Returns
    -------
    GenerationSummary

    Raises
    ------
    KeyboardInterrupt, Exception
        Re-raised after closing the file: it then holds every chunk completed before
        the interruption (a note on the exception says how many events), and its
        journal allows ``resume=True``. A SIGKILL leaves the same (without the note).
    GenerationResumeError
        ``resume=True`` without a journal, with other options, or an unreadable file.
    """
    if n_events < 1:
        raise ValueError(f"n_events must be >= 1, got {n_events}")
    if count not in ("selected", "generated"):
        raise ValueError(f"count must be 'selected' or 'generated', got {count!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    settings = GeneratorSettings(
        top_mass=top_mass,
        mpi=mpi,
        isr=isr,
        fsr=fsr,
        hadronisation=hadronisation,
        chunk_size=chunk_size,
        select=select,
        max_jets=max_jets,
        process=process,
    )
    output = Path(output)
    chunks: range | None = None
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
        if count != "generated":
            raise ValueError(
                "shard needs count='generated' (CLI --count generated): with count='selected' "
                "the number of chunks is unknown in advance"
            )
        chunks = shard_chunks(-(-n_events // chunk_size), shard)
    elif count == "generated":
        chunks = range(-(-n_events // chunk_size))
    provenance = {
        "generator": "hepvld.generate",
        "seed": seed,
        "count": count,
        "n_events": n_events,
        "settings": settings.to_dict(),
        "shard": None if shard is None else list(shard),
    }
    wall_start = time.perf_counter()
    cutflow, cpu, n_chunks, empty_run = Cutflow(), 0.0, 0, 0
    if resume:
        journal = read_journal(output)
        check_same_run(journal, provenance, output)
        writer = _reopen(output, journal, compression, provenance)
        cutflow, cpu = Cutflow.from_dict(journal["cutflow"]), float(journal["cpu_seconds"])
        n_chunks = int(journal["n_chunks"])
        start = int(journal["next_chunk"])
        chunks = range(start, chunks.stop) if chunks is not None else range(start, 2**62)
        log.info(
            "resuming %s: %d events of %d chunks kept, continuing at chunk %d",
            output,
            writer.n_written,
            n_chunks,
            start,
        )
    else:
        if journal_path(output).exists():
            log.warning("%s: overwriting an unfinished run (--resume continues one)", output)
        writer = EventWriter(output, compression=compression, provenance=provenance)
    if count == "selected" and writer.n_written >= n_events:
        chunks = range(0)

    def save_journal(next_chunk: int) -> None:
        write_journal(
            output,
            {
                **provenance,
                "next_chunk": next_chunk,
                "events_written": writer.n_written,
                "n_chunks": n_chunks,
                "cutflow": cutflow.to_dict(),
                "cpu_seconds": cpu,
            },
        )

    if not resume:
        save_journal(0 if chunks is None else chunks.start)
    bar = _progress_bar(n_events, count) if progress else None
    results = _results(_tasks(n_events, count, seed, settings, chunks), workers)
    complete = False
    try:
        for result in results:
            need = n_events - writer.n_written if count == "selected" else result.n_written
            branches, chunk_cutflow = result.head(need)
            writer.write(branches)
            cutflow, cpu, n_chunks = cutflow + chunk_cutflow, cpu + result.cpu_seconds, n_chunks + 1
            save_journal(result.index + 1)
            log.debug("chunk %d: %s", result.index, chunk_cutflow.as_dict())
            if bar is not None:
                bar.update(len(branches["event"]) if count == "selected" else chunk_cutflow.total)
                bar.set_postfix(
                    gen_per_s=f"{cutflow.total / (time.perf_counter() - wall_start):.0f}"
                )
            empty_run = empty_run + 1 if writer.n_written == 0 else 0
            if empty_run >= _MAX_EMPTY_CHUNKS:
                raise RuntimeError(
                    f"no event passed the selection in {empty_run} chunks; check the settings"
                )
            if count == "selected" and writer.n_written >= n_events:
                break
        complete = True
    except BaseException as exc:
        message = (
            f"generation stopped by {type(exc).__name__} after {n_chunks} chunk(s): "
            f"{output} is readable and holds {writer.n_written} events"
        )
        log.error(message)
        if hasattr(exc, "add_note"):
            exc.add_note(message)
        raise
    finally:
        results.close()
        writer.provenance["cutflow"] = cutflow.as_dict()
        writer.close(complete=complete)
        if complete:
            journal_path(output).unlink(missing_ok=True)
        if bar is not None:
            bar.close()
    summary = GenerationSummary(
        output=output,
        n_written=writer.n_written,
        cutflow=cutflow,
        n_chunks=n_chunks,
        seed=seed,
        settings=settings,
        wall_seconds=time.perf_counter() - wall_start,
        cpu_seconds=cpu,
        complete=complete,
    )
    log.info(
        "wrote %d events to %s (%d generated, %.1f generated / %.1f written per CPU-s)\n%s",
        summary.n_written,
        output,
        summary.n_generated,
        summary.generated_per_cpu_second,
        summary.written_per_cpu_second,
        str(cutflow),
    )
    return summary


def _reopen(
    output: Path, journal: dict[str, Any], compression: str | None, provenance: dict[str, Any]
) -> EventWriter:
    """A writer holding the journal's whole chunks of ``output``, renamed into place.

    The chunks are copied (chunk by chunk, as first written) into a temporary file that
    replaces ``output`` atomically, so a kill during the copy leaves the old file intact.
    """
    tmp = output.with_name(f".{output.name}.resume.partial")
    writer = EventWriter(tmp, compression=compression, provenance=provenance)
    try:
        for _, branches in read_chunks(output, int(journal["events_written"])):
            writer.write(branches)
        if writer.n_written != int(journal["events_written"]):
            raise GenerationResumeError(
                f"{output}: copied {writer.n_written} events, journal says "
                f"{journal['events_written']}; run without --resume"
            )
        os.replace(tmp, output)  # the open handle keeps writing to the renamed file
    except BaseException:
        writer.close(complete=False)
        tmp.unlink(missing_ok=True)
        raise
    writer.path = output
    return writer


def _progress_bar(total: int, count: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="ev", desc=f"{count} events", dynamic_ncols=True)
