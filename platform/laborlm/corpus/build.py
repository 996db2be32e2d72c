"""Build a text corpus from canonical panels with Ray Data: read -> validate -> render -> write shards.

    laborlm corpus build --input runs/psid --input runs/resumes --out runs/corpus --template labor-llm
    laborlm run jobs/build_corpus.yaml

The unit of work is a set of whole persons. Panel writers never split a person across shards and sort each
shard by (person_id, year), so when the Parquet statistics prove that an input's shards hold disjoint
person-id ranges, each shard is one task: no shuffle, and output files are named after the input shard
(``corpus-<input>-<shard>-<part>.parquet``), so the output is byte-identical whatever the number of workers.
When that cannot be proven (a panel written by another tool), rows are regrouped by a stable hash of the
person id with a Ray Data ``groupby`` into as many buckets as the input has files, and outputs are named
after the bucket instead (``corpus-<input>-b<bucket>-<part>.parquet``): slower, equally deterministic.

Every task validates its rows with the readers' rules (``laborlm.readers.validate_table``): bad rows go to
``rejects.jsonl`` with file, 1-based row, field and reason, and ``rows_in = rows_kept + rows_rejected`` is
recorded per input in ``manifest.json``. Workers write their shards (and per-task rejects) straight into the
output folder, so on a multi-node cluster ``out_dir`` must be on storage that every node sees. The driver
only collects one small summary per task. Library code never calls ``ray.init``; the CLI and tests do.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laborlm import __version__, schema
from laborlm.config import config_hash, to_dict
from laborlm.corpus.manifest import (
    MANIFEST_FILE,
    REJECTS_FILE,
    TAXONOMY_FILE,
    TEMPLATE_FILE,
    CorpusManifest,
    FileStamp,
    InputSummary,
    OutputShard,
    read_manifest,
)
from laborlm.corpus.render import render_table
from laborlm.corpus.template import Template, load_template
from laborlm.errors import ConfigError, InputDataError, LaborLMError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.paths import write_failure
from laborlm.readers import RejectWriter, validate_table
from laborlm.readers.layout import source_name
from laborlm.readers.validate import canonical_columns
from laborlm.splits import SplitConfig, assign_splits, unit_hash

if TYPE_CHECKING:
    import ray.data

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
_PARTS_DIR = "_rejects"  # per-task rejects, merged into rejects.jsonl in task order by the driver
_HELPER_COLUMNS = ("_input", "_file", "_row", "_bucket")  # shuffle path only


@dataclass(frozen=True)
class CorpusConfig:
    """``kind: build_corpus``. The parallelism (``num_workers``) is not here: it cannot change the output."""

    inputs: tuple[Path, ...] = ()  # canonical panel folders (laborlm data import / synth) or Parquet files
    out_dir: Path = Path("runs/corpus")
    template: str = "labor-llm"  # built-in (labor-llm, codes, bare) or a template YAML file
    taxonomy: str | None = (
        None  # None: the inputs' taxonomy.csv (all must agree), else occ1990dd; or occ1990dd / a CSV
    )
    split: SplitConfig = field(default_factory=SplitConfig)  # for persons whose panel split is null
    rows_per_shard: int = 100_000  # documents (people) per output Parquet file
    max_reject_fraction: float | None = (
        None  # fail when an input loses a larger share of its rows; None: never
    )

    def __post_init__(self) -> None:
        problems = []
        if self.rows_per_shard < 1:
            problems.append(f"rows_per_shard: must be >= 1, got {self.rows_per_shard}")
        if self.max_reject_fraction is not None and not 0.0 <= self.max_reject_fraction <= 1.0:
            problems.append(f"max_reject_fraction: must be in [0, 1], got {self.max_reject_fraction}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class _Job:
    """What every task needs; small, picklable, shipped once with the map operator."""

    out_dir: str
    template: Template
    taxonomy: Taxonomy
    split: SplitConfig
    rows_per_shard: int
    inputs: tuple[str, ...]  # input paths, by input index
    files: tuple[tuple[str, ...], ...]  # data files per input
    sources: tuple[str, ...]  # default source per input (for rows without one)


def build_corpus(config: CorpusConfig, *, num_workers: int | None = None) -> CorpusManifest:
    """Build (or confirm up to date) the corpus described by ``config``; returns its manifest.

    Args:
        num_workers: concurrent Ray tasks; None lets Ray Data use every CPU of the cluster.

    Raises:
        ConfigError: no inputs, an unknown template, or inputs whose taxonomies disagree.
        InputDataError: an unreadable input, a whole-file problem (missing or unknown columns), or an input
            whose rejected share exceeds ``max_reject_fraction`` (the rejects file is kept for inspection).
        LaborLMError: Ray is not initialised, or ``out_dir`` holds files that are not a corpus's.
    """
    import ray

    start = time.perf_counter()
    if not config.inputs:
        raise ConfigError("inputs: at least one panel is required")
    if not ray.is_initialized():
        raise LaborLMError("build_corpus needs Ray initialised by the caller (ray.init or --address)")
    if num_workers is not None and num_workers < 1:
        raise LaborLMError(f"num_workers must be >= 1, got {num_workers}")
    template = load_template(config.template)
    files = [_data_files(Path(p)) for p in config.inputs]
    taxonomy = _resolve_taxonomy(config.taxonomy, [Path(p) for p in config.inputs])
    out_dir = Path(config.out_dir)
    stamps = tuple(
        (str(Path(p).resolve()), tuple(FileStamp.of(f) for f in fs)) for p, fs in zip(config.inputs, files)
    )
    chash = config_hash(config)

    previous = read_manifest(out_dir)
    if previous is not None and previous.is_current(
        config_hash=chash,
        template_fingerprint=template.fingerprint(),
        taxonomy_fingerprint=taxonomy.fingerprint(),
        inputs=stamps,
        folder=out_dir,
    ):
        logger.info(
            "corpus %s is up to date (config %s, %d input file(s)); nothing to do",
            out_dir,
            chash,
            sum(len(f) for f in files),
        )
        return previous

    for fs in files:
        for f in fs:
            _check_columns(f)
    try:
        _clear(out_dir)
        (out_dir / _PARTS_DIR).mkdir(parents=True)
    except OSError as exc:
        raise write_failure(exc, out_dir) or exc from exc
    job = _Job(
        out_dir=str(out_dir.resolve()),
        template=template,
        taxonomy=taxonomy,
        split=config.split,
        rows_per_shard=config.rows_per_shard,
        inputs=tuple(str(p) for p in config.inputs),
        files=tuple(tuple(str(f) for f in fs) for fs in files),
        sources=tuple(source_name(Path(p).name if Path(p).is_dir() else Path(p).stem) for p in config.inputs),
    )
    clustered = [_clustered(fs) for fs in files]
    for path, ok in zip(config.inputs, clustered):
        logger.info(
            "%s: %s",
            path,
            "shards hold disjoint persons; one task per shard"
            if ok
            else "persons not provably clustered by shard; regrouping rows by person (shuffle)",
        )
    try:
        return _build(config, job, clustered, num_workers, chash, template, taxonomy, stamps, start)
    except BaseException as exc:
        failure = write_failure(exc, out_dir)  # the disk filled up or turned read-only mid-build
        if failure is None:
            raise
        _remove_partial(out_dir)
        raise failure from exc


def _remove_partial(out_dir: Path) -> None:
    """Everything a failed build wrote (no manifest was written, so nothing here is a corpus yet)."""
    for p in out_dir.iterdir():
        if _owned(p):
            try:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            except OSError as exc:  # a read-only disk: what is left has no manifest, so is never reused
                logger.warning("%s: could not remove %s (%s)", out_dir, p.name, exc.strerror)


def _build(
    config: CorpusConfig,
    job: _Job,
    clustered: list[bool],
    num_workers: int | None,
    chash: str,
    template: Template,
    taxonomy: Taxonomy,
    stamps: tuple[tuple[str, tuple[FileStamp, ...]], ...],
    start: float,
) -> CorpusManifest:
    """The Ray tasks, the accounting and the manifest (written last: its presence marks a finished build)."""
    out_dir = Path(config.out_dir)
    summaries = _run(job, clustered, num_workers)
    summaries.sort(key=lambda s: s["unit"])

    errors = [s["error"] for s in summaries if s.get("error")]
    if errors:
        _discard_shards(out_dir, summaries)
        raise InputDataError(**errors[0])
    _merge_rejects(out_dir, [s["unit"] for s in summaries])
    inputs = _input_summaries(config, stamps, clustered, summaries)
    _check_rejects(config, inputs, out_dir, summaries)

    taxonomy.to_csv(out_dir / TAXONOMY_FILE)
    (out_dir / TEMPLATE_FILE).write_text(template.to_yaml(), encoding="utf-8")
    manifest = CorpusManifest(
        config_hash=chash,
        config=to_dict(config),
        template={
            "name": template.name,
            "version": template.version,
            "fingerprint": template.fingerprint(),
            "occupation": template.occupation,
        },
        taxonomy={"name": taxonomy.name, "fingerprint": taxonomy.fingerprint(), "size": len(taxonomy)},
        inputs=inputs,
        rows_in=sum(i.rows_in for i in inputs),
        rows_kept=sum(i.rows_kept for i in inputs),
        rows_rejected=sum(i.rows_rejected for i in inputs),
        people=_people(summaries),
        chars=sum(s["chars"] for s in summaries),
        files=tuple(OutputShard(**f) for s in summaries for f in s["files"]),
        extra={"laborlm_version": __version__, "seconds": round(time.perf_counter() - start, 3)},
    )
    manifest.write(out_dir)
    logger.info(
        "corpus %s: %d documents, %d person-years rendered, %d rejected, %d shard(s), template %s v%d",
        out_dir,
        manifest.documents,
        manifest.rows_kept,
        manifest.rows_rejected,
        len(manifest.files),
        template.name,
        template.version,
    )
    return manifest


def corpus_files(corpus_dir: str | Path) -> list[Path]:
    """The shard files of a built corpus, in order (from its manifest, never a glob).

    Raises:
        LaborLMError: the folder has no corpus manifest (not built, or the build did not finish).
    """
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    if manifest is None:
        raise LaborLMError(f"{corpus_dir}: no {MANIFEST_FILE}; build the corpus first (laborlm corpus build)")
    return [corpus_dir / f.name for f in manifest.files]


FRACTION_SEED = 0x5EED_DA7A  # keys the data-fraction subsets apart from any split seed


def iter_texts(
    files: Iterable[Path], split: str, batch_size: int, fraction: float = 1.0
) -> Iterator[list[str]]:
    """The texts of one split of corpus shards, streamed in Parquet batches of at most ``batch_size`` rows.

    ``fraction`` < 1 keeps the people whose hash (keyed apart from the split's) falls below it: a
    deterministic subset that grows with the fraction (the people at 0.1 are among those at 0.3), so
    data-scaling runs differ only in how much of one corpus they see, never in which kind of people.
    """
    columns = [schema.SPLIT, "text"] + ([schema.PERSON_ID] if fraction < 1.0 else [])
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=batch_size):
            keep = pc.equal(batch.column(schema.SPLIT), split)
            if fraction < 1.0:
                share = pa.array(
                    [unit_hash(str(p), FRACTION_SEED) for p in batch.column(schema.PERSON_ID).to_pylist()]
                )
                keep = pc.and_(keep, pc.less(share, fraction))
            texts = batch.filter(keep).column("text").to_pylist()
            if texts:
                yield texts


# --- planning (driver) ---------------------------------------------------------------------------------------


def _data_files(path: Path) -> list[Path]:
    """A panel folder's Parquet shards in name order, or the file itself."""
    if path.is_file():
        if path.suffix.lower() not in PARQUET_SUFFIXES:
            raise InputDataError(
                str(path),
                None,
                None,
                "a corpus is built from Parquet panels; convert other formats with `laborlm data import`",
            )
        return [path]
    if not path.is_dir():
        raise InputDataError(str(path), None, None, "no such file or folder")
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES and not p.name.startswith((".", "_"))
    )
    if not files:
        raise InputDataError(
            str(path),
            None,
            None,
            "folder holds no Parquet shards; convert other formats with `laborlm data import`",
        )
    return files


def _resolve_taxonomy(spec: str | None, inputs: list[Path]) -> Taxonomy:
    """The configured taxonomy, else the one the input folders carry (they must agree), else occ1990dd."""
    if spec is not None:
        return Taxonomy.default() if spec == "occ1990dd" else Taxonomy.from_csv(spec)
    found: dict[str, tuple[Taxonomy, Path]] = {}
    for folder in inputs:
        path = folder / TAXONOMY_FILE
        if folder.is_dir() and path.is_file():
            taxonomy = Taxonomy.from_csv(path)
            found.setdefault(taxonomy.fingerprint(), (taxonomy, path))
    if len(found) > 1:
        listed = ", ".join(f"{p} ({t.name}, {fp})" for fp, (t, p) in found.items())
        raise ConfigError(
            f"taxonomy: the inputs carry different taxonomies ({listed}); set taxonomy to one of them"
        )
    if found:
        return next(iter(found.values()))[0]
    logger.info("taxonomy: occ1990dd (no input folder carries a %s)", TAXONOMY_FILE)
    return Taxonomy.default()


def _check_columns(path: Path) -> None:
    """Fail on an unreadable file or a bad header before any task starts (readers' whole-file rules)."""
    try:
        arrow_schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(str(path), None, None, f"not a readable Parquet file ({exc})") from None
    canonical_columns(arrow_schema.empty_table(), str(path))


def _clustered(files: list[Path]) -> bool:
    """Whether Parquet statistics prove that no person id occurs in two of ``files``.

    Each file's (min, max) person id comes from its row-group statistics (metadata only, no data read);
    disjoint ranges prove disjoint persons. Missing statistics prove nothing, so the caller regroups. Ids are
    compared as stored; panels from LaborLM's writers store them canonical (trimmed), as validation does.
    """
    ranges = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        if meta.num_rows == 0:
            continue
        names = [meta.schema.column(j).name.strip().lower() for j in range(meta.num_columns)]
        if schema.PERSON_ID not in names:
            return False
        column = names.index(schema.PERSON_ID)
        lows, highs = [], []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
                return False
            lows.append(stats.min)
            highs.append(stats.max)
        ranges.append((min(lows), max(highs)))
    ranges.sort()
    return all(prev[1] < nxt[0] for prev, nxt in itertools.pairwise(ranges))


def _clear(out_dir: Path) -> None:
    """Remove a previous corpus from ``out_dir``; refuse, before deleting anything, if it holds other files."""
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        return
    if not out_dir.is_dir():
        raise LaborLMError(f"{out_dir}: exists and is not a folder")
    entries = list(out_dir.iterdir())
    foreign = sorted(p.name for p in entries if not _owned(p))
    if foreign:
        raise LaborLMError(
            f"{out_dir}: refusing to build a corpus into a folder that holds other files "
            f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); use an empty or new folder"
        )
    for p in entries:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        if ".tmp" in p.name:
            logger.info("removed %s, left by an interrupted build", p)


def _owned(path: Path) -> bool:
    name = path.name
    if path.is_dir():
        return name == _PARTS_DIR
    return (
        name in (MANIFEST_FILE, REJECTS_FILE, TAXONOMY_FILE, TEMPLATE_FILE, f".{MANIFEST_FILE}.tmp")
        or (name.startswith("corpus-") and name.endswith(".parquet"))
        or (name.startswith(".corpus-") and ".parquet.tmp-" in name)
    )


# --- execution (Ray) -----------------------------------------------------------------------------------------


def _run(job: _Job, clustered: list[bool], num_workers: int | None) -> list[dict[str, Any]]:
    """Run the tasks of every input; one summary dict per unit of work."""
    import ray

    summaries: list[dict[str, Any]] = []
    pool = ray.data.TaskPoolStrategy(size=num_workers)  # size None: as many tasks as the cluster fits
    direct = [
        {"input": i, "file": j} for i, ok in enumerate(clustered) if ok for j in range(len(job.files[i]))
    ]
    if direct:
        ds = task_dataset(direct).map_batches(
            functools.partial(_build_shards, job=job),
            batch_size=1,
            batch_format="numpy",
            compute=pool,
            num_cpus=1,
        )
        summaries += [json.loads(row["summary"]) for row in ds.take_all()]
    regroup = [
        {"input": i, "file": j} for i, ok in enumerate(clustered) if not ok for j in range(len(job.files[i]))
    ]
    if regroup:
        ds = (
            task_dataset(regroup)
            .map_batches(
                functools.partial(_read_rows, job=job),
                batch_size=1,
                batch_format="numpy",
                compute=pool,
                num_cpus=1,
            )
            .groupby(["_input", "_bucket"])
            .map_groups(
                functools.partial(_build_group, job=job), batch_format="pyarrow", compute=pool, num_cpus=1
            )
        )
        summaries += [json.loads(row["summary"]) for row in ds.take_all()]
    return summaries


def task_dataset(items: list[dict[str, Any]]) -> ray.data.Dataset:
    """One block per item (one task each), with a private DataContext tuned for few, long tasks.

    Both settings apply to this dataset and those derived from it, never to the caller's global context.
    """
    import ray.data

    ds = ray.data.from_items(items, override_num_blocks=len(items))
    # Resource reservation keeps CPUs back for downstream operators. These pipelines have one operator (or
    # a shuffle barrier between two), and on a small cluster the reservation runs their tasks nearly one at
    # a time: 8 tasks of 0.25 s took 2.0 s on 2 CPUs with it and 1.1 s without.
    ds.context.op_resource_reservation_enabled = False
    # Few, large groups (one per input file): a task-based sort shuffle suits them; the default hash
    # shuffle first starts aggregator actors, which costs seconds even for a tiny panel.
    ds.context.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    return ds


def _build_shards(batch: dict[str, np.ndarray], job: _Job) -> dict[str, np.ndarray]:
    """Task of the no-shuffle path: one input shard -> its corpus shards."""
    out = []
    for i, j in zip(batch["input"].tolist(), batch["file"].tolist()):
        path = job.files[i][j]
        unit = f"{i:03d}-{j:05d}"
        try:
            raw = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            out.append(
                _failed(unit, InputDataError(path, None, None, f"not a readable Parquet file ({exc})"))
            )
            continue
        rows = np.arange(1, raw.num_rows + 1, dtype=np.int64)
        out.append(_build_unit(raw, unit, i, job, path=path, row_numbers=rows, locate=None))
    return {"summary": np.array(out, dtype=object)}


def _read_rows(batch: dict[str, np.ndarray], job: _Job) -> pa.Table:
    """First task of the shuffle path: a file's rows as text, tagged with input, file, row and person bucket."""
    tables = []
    for i, j in zip(batch["input"].tolist(), batch["file"].tolist()):
        path = job.files[i][j]
        raw = canonical_columns(pq.read_table(path), path)
        n = raw.num_rows
        # Text columns throughout, so shards whose Parquet types differ still concatenate; validation parses text.
        columns = {
            c: (raw.column(c).cast(pa.string()) if c in raw.column_names else pa.nulls(n, pa.string()))
            for c in schema.COLUMNS
        }
        pid = pc.utf8_trim_whitespace(
            pc.fill_null(columns[schema.PERSON_ID], "")
        ).combine_chunks()  # as validated
        encoded = pc.dictionary_encode(pid)
        n_buckets = len(job.files[i])
        buckets = np.array(
            [int(unit_hash(p, 0) * n_buckets) for p in encoded.dictionary.to_pylist()], dtype=np.int32
        )
        tables.append(
            pa.table(
                {
                    **columns,
                    "_input": pa.array(np.full(n, i, dtype=np.int32)),
                    "_file": pa.array(np.full(n, j, dtype=np.int32)),
                    "_row": pa.array(np.arange(1, n + 1, dtype=np.int64)),
                    "_bucket": pa.array(buckets[encoded.indices.to_numpy(zero_copy_only=False)]),
                }
            )
        )
    return pa.concat_tables(tables)


def _build_group(group: pa.Table, job: _Job) -> pa.Table:
    """Second task of the shuffle path: one (input, bucket) group of whole persons -> its corpus shards."""
    group = group.sort_by(
        [("_file", "ascending"), ("_row", "ascending")]
    )  # arrival order varies; this does not
    i = int(group.column("_input")[0].as_py())
    unit = f"{i:03d}-b{int(group.column('_bucket')[0].as_py()):05d}"
    file_of = group.column("_file").to_numpy()
    rows = group.column("_row").to_numpy()
    names = job.files[i]
    raw = group.drop_columns(list(_HELPER_COLUMNS))
    summary = _build_unit(
        raw,
        unit,
        i,
        job,
        path=job.inputs[i],
        row_numbers=rows,
        locate=lambda k, _field: (names[file_of[k]], int(rows[k])),
    )
    return pa.table({"summary": [summary]})


def _build_unit(
    raw: pa.Table,
    unit: str,
    input_index: int,
    job: _Job,
    *,
    path: str,
    row_numbers: np.ndarray,
    locate: Callable[[int, str | None], tuple[str, int]] | None,
) -> str:
    """Validate, render and write one unit of whole persons; returns its JSON summary."""
    out_dir = Path(job.out_dir)
    try:
        with RejectWriter(out_dir / _PARTS_DIR / f"{unit}.jsonl") as rejects:
            table, counts = validate_table(
                raw,
                path=path,
                row_numbers=row_numbers,
                taxonomy=job.taxonomy,
                rejects=rejects,
                source=job.sources[input_index],
                locate=locate,
            )
    except InputDataError as exc:
        return _failed(unit, exc)
    rendered = render_table(assign_splits(table, job.split), job.taxonomy, job.template)
    files = []
    for k, begin in enumerate(range(0, rendered.num_rows, job.rows_per_shard)):
        name = f"corpus-{unit}-{k:03d}.parquet"
        part = rendered.slice(begin, job.rows_per_shard)
        # A temporary name until the file is whole: a full disk or a killed worker never leaves a truncated
        # shard under a shard's name (re-executed tasks rewrite the same bytes, then rename over it).
        tmp = out_dir / f".{name}.tmp-{os.getpid()}"
        pq.write_table(part, tmp)
        os.replace(tmp, out_dir / name)
        files.append({"name": name, "rows": part.num_rows, "bytes": (out_dir / name).stat().st_size})
    people: dict[str, dict[str, int]] = {}
    if rendered.num_rows:
        by = rendered.group_by([schema.SOURCE, schema.SPLIT]).aggregate([(schema.PERSON_ID, "count")])
        for row in by.to_pylist():
            people.setdefault(row[schema.SOURCE], {})[row[schema.SPLIT]] = row[f"{schema.PERSON_ID}_count"]
    return json.dumps(
        {
            "unit": unit,
            "input": input_index,
            **counts.to_dict(),
            "files": files,
            "people": people,
            "chars": int(pc.sum(rendered.column("n_chars")).as_py() or 0),
        }
    )


def _failed(unit: str, exc: InputDataError) -> str:
    """A unit's summary when a whole-input problem stops it; the driver raises the first in unit order."""
    error = {
        "path": exc.path,
        "row": exc.row,
        "field": exc.field,
        "reason": exc.reason,
        "value": exc.to_record()["value"],
        "more": exc.more,
    }
    return json.dumps({"unit": unit, "error": error, "files": []})


# --- accounting (driver) -------------------------------------------------------------------------------------


def _merge_rejects(out_dir: Path, units: Iterable[str]) -> None:
    """Concatenate the per-task rejects in unit order into ``rejects.jsonl`` (empty file: nothing rejected)."""
    parts = out_dir / _PARTS_DIR
    with open(out_dir / REJECTS_FILE, "wb") as merged:
        for unit in units:
            part = parts / f"{unit}.jsonl"
            if part.is_file():
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, merged)
    shutil.rmtree(parts)


def _input_summaries(
    config: CorpusConfig,
    stamps: tuple[tuple[str, tuple[FileStamp, ...]], ...],
    clustered: list[bool],
    summaries: list[dict[str, Any]],
) -> tuple[InputSummary, ...]:
    out = []
    for i, (path, files) in enumerate(stamps):
        mine = [s for s in summaries if s["input"] == i]
        out.append(
            InputSummary(
                path=path,
                files=files,
                grouping="shards" if clustered[i] else "shuffle",
                rows_in=sum(s["rows_in"] for s in mine),
                rows_kept=sum(s["rows_kept"] for s in mine),
                rows_rejected=sum(s["rows_rejected"] for s in mine),
                people=sum(n for s in mine for splits in s["people"].values() for n in splits.values()),
            )
        )
        logger.info(
            "%s: rows in %d = kept %d + rejected %d; %d people",
            config.inputs[i],
            out[-1].rows_in,
            out[-1].rows_kept,
            out[-1].rows_rejected,
            out[-1].people,
        )
    return tuple(out)


def _people(summaries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Documents per source and split over all units, sorted by name."""
    people: dict[str, dict[str, int]] = {}
    for s in summaries:
        for source, splits in s["people"].items():
            counts = people.setdefault(source, {})
            for split, n in splits.items():
                counts[split] = counts.get(split, 0) + n
    return {src: dict(sorted(splits.items())) for src, splits in sorted(people.items())}


def _check_rejects(
    config: CorpusConfig, inputs: tuple[InputSummary, ...], out_dir: Path, summaries: list[dict[str, Any]]
) -> None:
    """Fail fast when an input lost more rows than allowed; keep only the rejects file for inspection."""
    limit = config.max_reject_fraction
    if limit is None:
        return
    for given, summary in zip(config.inputs, inputs):
        share = summary.rows_rejected / summary.rows_in if summary.rows_in else 0.0
        if share > limit:
            _discard_shards(out_dir, summaries)
            raise InputDataError(
                str(given),
                None,
                None,
                f"{summary.rows_rejected:,} of {summary.rows_in:,} rows ({share:.1%}) rejected, more than "
                f"max_reject_fraction={limit}; see {out_dir / REJECTS_FILE}",
            )


def _discard_shards(out_dir: Path, summaries: list[dict[str, Any]]) -> None:
    for s in summaries:
        for f in s["files"]:
            (out_dir / f["name"]).unlink(missing_ok=True)
    shutil.rmtree(out_dir / _PARTS_DIR, ignore_errors=True)
