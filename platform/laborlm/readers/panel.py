"""Long panels (one row per person-year) in Parquet or CSV -> the canonical schema, and back.

    from laborlm.readers import RejectWriter, read_panel
    with RejectWriter("runs/x/rejects.jsonl") as rejects:
        panel = read_panel("data/psid.csv", rejects=rejects)

``read_panel`` takes a file, a folder of shards, or a CAREER split-file folder, and always returns the
canonical table sorted by (person_id, year) with the taxonomy it was checked against. What counts as valid
is ``laborlm.readers.validate``'s business; this module only gets rows out of files without ever letting a
pyarrow or decoding traceback reach the user: every failure is an :class:`InputDataError` naming the file,
and the line when one is known.

Row numbers are what an editor shows: in a CSV the header is line 1, so the first data row is line 2, and a
quoted value spanning several lines moves the following rows down accordingly; in Parquet rows count from 1.
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
from pathlib import Path
from typing import NamedTuple, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from laborlm import schema
from laborlm.errors import InputDataError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.paths import remove_stale_temps, temp_sibling
from laborlm.readers.career_files import is_career_folder, read_career_files
from laborlm.readers.layout import TAXONOMY_FILE, replace_folder, resolve_taxonomy, source_name
from laborlm.readers.recode import ImportMaps, apply_column_map, recode
from laborlm.readers.rejects import RecodeLog, RejectWriter
from laborlm.readers.validate import (
    Dropped,
    PanelRead,
    canonical_columns,
    distinct_codes,
    sort_panel,
    validate_table,
)

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
_SHARD = re.compile(r"^part-\d{5}\.parquet$")
_LINE_BREAK = r"\r\n|\r|\n"
_SHOWN_CHARS = 200  # of a bad line, in a reject record


class _Raw(NamedTuple):
    table: pa.Table  # canonical column names, values as in the file
    rows: np.ndarray  # [num_rows] 1-based row/line of each row in its file
    dropped: list[Dropped]
    ignored: tuple[str, ...] = ()  # the file's columns left out by the import maps


def read_panel(
    path: str | Path,
    *,
    taxonomy: Taxonomy | str | Path | None = None,
    rejects: RejectWriter | None = None,
    source: str | None = None,
    maps: ImportMaps | None = None,
) -> PanelRead:
    """Read a panel into the canonical schema.

    Args:
        path: a ``.csv`` or ``.parquet`` file; a folder of such shards, read in file-name order (one format
            per folder; ``taxonomy.csv`` and names starting with ``.`` or ``_`` are not shards); or a CAREER
            split-file folder (``train.job`` ...), read by :func:`read_career_files`.
        taxonomy: a ``Taxonomy`` object (used as is), a path to a ``code,title[,group]`` CSV, ``"occ1990dd"``
            or ``"infer"``. None picks automatically: the folder's ``taxonomy.csv`` if there is one, else
            occ1990dd unless fewer than half of the distinct codes in the data are occ1990dd codes, in which
            case the taxonomy is inferred from the data (``layout.resolve_taxonomy``; the choice is logged).
        rejects: where bad rows go; without it the first problem is raised.
        source: the ``source`` of rows without one; default: the file's stem or the folder's name,
            lower-cased with characters outside [a-z0-9_] replaced by ``_``.
        maps: a survey's column names, value labels, state labels and two-digit years
            (``laborlm.readers.recode``); every value they change is counted in the result's ``recoded``.

    Raises:
        InputDataError: an unreadable or malformed file (always), or a bad row when ``rejects`` is None.
    """
    path = Path(path)
    maps = maps or ImportMaps()
    if path.is_dir():
        if is_career_folder(path):
            return read_career_files(path, taxonomy=taxonomy, rejects=rejects, source=source, maps=maps)
        files = _shards(path)
    elif path.is_file():
        _format(path)
        files = [path]
    else:
        raise InputDataError(str(path), None, None, "no such file or folder")
    raws = [_read_parquet(f, maps) if _format(f) == "parquet" else _read_csv(f, maps) for f in files]
    log = RecodeLog()
    raw = recode(_concat(path, [r.table for r in raws]), maps, str(path), log)
    rows = np.concatenate([r.rows for r in raws]).astype(np.int64)
    file_of_row = np.repeat(np.arange(len(files)), [len(r.rows) for r in raws])  # [num_rows]
    names = [str(f) for f in files]
    resolved = resolve_taxonomy(
        taxonomy,
        path if path.is_dir() else None,
        distinct_codes(raw.column(schema.OCCUPATION), str(path)),
        maps.states,
    )
    default_source = source if source is not None else source_name(path.name if path.is_dir() else path.stem)
    table, counts = validate_table(
        raw,
        path=str(path),
        row_numbers=rows,
        taxonomy=resolved,
        rejects=rejects,
        source=default_source,
        locate=lambda i, _field: (names[file_of_row[i]], int(rows[i])),
        dropped=[d for r in raws for d in r.dropped],
        recodings=log,
    )
    ignored = tuple(dict.fromkeys(name for r in raws for name in r.ignored))
    defaulted = None if schema.SOURCE in raw.column_names else default_source
    return PanelRead(table, resolved, counts, tuple(files), log.entries(), ignored, defaulted)


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise InputDataError(
        str(path), None, None, "unsupported file type; expected .csv, .parquet or a folder of them"
    )


def _shards(folder: Path) -> list[Path]:
    """The data files of a panel folder, in name order; one format only."""
    candidates = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith((".", "_")) and p.name != TAXONOMY_FILE
    )
    files = [p for p in candidates if p.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES]
    if len(files) < len(candidates):
        logger.info(
            "%s: ignoring %d file(s) that are not .csv or .parquet", folder, len(candidates) - len(files)
        )
    if not files:
        raise InputDataError(
            str(folder),
            None,
            None,
            "folder holds no .csv or .parquet files and no CAREER split files (train.job ...)",
        )
    if len({_format(f) for f in files}) > 1:
        raise InputDataError(
            str(folder), None, None, "folder mixes .csv and .parquet files; keep one format per panel"
        )
    return files


def _concat(path: Path, tables: list[pa.Table]) -> pa.Table:
    """One table from the shards; a column absent from some shards is null there."""
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InputDataError(str(path), None, None, f"the shards' column types disagree ({exc})") from None


def _read_parquet(path: Path, maps: ImportMaps) -> _Raw:
    """A Parquet file's rows, columns checked against the schema before any data is read."""
    try:
        parquet = pq.ParquetFile(path)
        header, ignored = apply_column_map(parquet.schema_arrow.empty_table(), maps, str(path))
        canonical_columns(header, str(path))
        table = parquet.read()
        # Parquet readers trust the file: text that is not UTF-8 (or corrupt offsets) would only fail later,
        # inside a compute kernel. A full validation (~GB/s) turns that into an error naming the file here.
        table.validate(full=True)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # corrupt metadata can hold bad names
        raise InputDataError(str(path), None, None, f"not a readable Parquet file ({exc})") from None
    table = apply_column_map(table, maps, str(path))[0]
    return _Raw(canonical_columns(table, str(path)), np.arange(1, table.num_rows + 1), [], ignored)


def _read_csv(path: Path, maps: ImportMaps) -> _Raw:
    """A CSV file's rows, every value as text (no type guessing: ``007`` stays ``007``).

    The file is read once into memory and parsed single-threaded, because only then does pyarrow report the
    record number of each malformed row (it does ~1.5M rows/s even so). Malformed rows (a field count that
    differs from the header's) become ``Dropped`` problems; rows whose fields are all empty (blank lines) are
    skipped, with a log line, because they hold nothing to reject.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputDataError(str(path), None, None, f"cannot read file: {exc.strerror or exc}") from None
    if not _is_utf8(data):
        _raise_not_utf8(path, data)
    header_end = re.search(rb"\r\n|\r|\n", data)
    header = data[: header_end.start() if header_end else len(data)].decode("utf-8-sig")
    if not header.strip():
        raise InputDataError(str(path), 1, None, "no header line; the first line must name the columns")
    names = next(csv.reader([header]))
    header_table, ignored = apply_column_map(
        pa.Table.from_arrays([pa.array([], pa.string())] * len(names), names=names), maps, str(path)
    )
    empty = canonical_columns(header_table, str(path))
    if header_end is None or header_end.end() == len(data):
        return _Raw(empty, np.zeros(0, dtype=np.int64), [], ignored)

    invalid: list[tuple[int, int, int, str]] = []  # (record number, expected fields, actual fields, text)

    def on_invalid(row: pcsv.InvalidRow) -> str:
        invalid.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(skip_rows=1, column_names=names, use_threads=False),
            parse_options=pcsv.ParseOptions(
                invalid_row_handler=on_invalid, newlines_in_values=True, ignore_empty_lines=False
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(str(path), None, None, f"malformed CSV ({exc})") from None
    lines = _record_lines(data, table, invalid)
    invalid_lines = lines[np.array([number for number, *_ in invalid], dtype=np.int64) - 2]
    row_lines = np.delete(lines, np.array([number for number, *_ in invalid], dtype=np.int64) - 2)
    dropped = [
        Dropped(
            InputDataError(
                str(path),
                int(line),
                None,
                f"has {actual} field(s); the header has {expected}",
                text[:_SHOWN_CHARS],
            ),
            1,
        )
        for line, (_, expected, actual, text) in zip(invalid_lines, invalid, strict=True)
    ]
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= np.asarray(pc.equal(column, "").to_numpy(zero_copy_only=False), dtype=bool)
    if blank.any():
        logger.info("%s: skipped %d blank line(s)", path, int(blank.sum()))
        table = table.filter(pa.array(~blank))
        row_lines = row_lines[~blank]
    table = apply_column_map(table, maps, str(path))[0]
    return _Raw(canonical_columns(table, str(path)), row_lines, dropped, ignored)


def _is_utf8(data: bytes) -> bool:
    """Whether the whole file is UTF-8, checked by Arrow without copying it (~1.5 GB/s).

    Checked up front because pyarrow reports neither where bad bytes are nor, inside a malformed row,
    that they are there at all.
    """
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    blob = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        blob.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _raise_not_utf8(path: Path, data: bytes, chunk: int = 1 << 26) -> NoReturn:
    """Raise an InputDataError naming the line of the first invalid UTF-8 byte (decodes in bounded chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, max(len(data), 1), chunk):
        try:
            decoder.decode(view[start : start + chunk], final=start + chunk >= len(data))
        except UnicodeDecodeError as exc:
            # The decoder may hold back up to 3 bytes of an unfinished character from the previous chunk.
            offset = max(start + exc.start - len(decoder.getstate()[0]), 0)
            line = data.count(b"\n", 0, offset) + 1
            raise InputDataError(
                str(path), line, None, "not UTF-8 text; re-encode the file as UTF-8"
            ) from None
    raise AssertionError("Arrow and Python disagree on whether the data are UTF-8")


def _record_lines(data: bytes, table: pa.Table, invalid: list[tuple[int, int, int, str]]) -> np.ndarray:
    """``[records]`` the editor line on which each data record (valid or invalid, in file order) starts.

    pyarrow numbers records, not lines; they differ only when a quoted value holds a line break. Counting the
    file's line breaks tells cheaply whether any does; only then are the breaks inside records counted.
    """
    n_records = table.num_rows + len(invalid)
    records = np.arange(2, n_records + 2, dtype=np.int64)
    breaks = data.count(b"\n")
    carriage_returns = data.count(b"\r")
    if carriage_returns:
        breaks += carriage_returns - data.count(b"\r\n")
    physical_lines = breaks + (0 if data.endswith((b"\n", b"\r")) else 1)
    if physical_lines == n_records + 1:
        return records
    inner = np.zeros(n_records, dtype=np.int64)  # [records] line breaks inside each record
    invalid_index = np.array([number for number, *_ in invalid], dtype=np.int64) - 2
    valid_index = np.delete(np.arange(n_records), invalid_index)
    for column in table.columns:
        inner[valid_index] += pc.count_substring_regex(column, _LINE_BREAK).to_numpy(zero_copy_only=False)
    for k, (_, _, _, text) in zip(invalid_index, invalid, strict=True):
        inner[k] = len(re.findall(_LINE_BREAK, text))
    before = np.concatenate([[0], np.cumsum(inner)[:-1]]).astype(np.int64)  # breaks in earlier records
    return records + before


def write_panel(
    table: pa.Table, out_dir: str | Path, taxonomy: Taxonomy, *, rows_per_shard: int = 1_000_000
) -> list[Path]:
    """Write a panel folder: ``part-00000.parquet`` ... plus ``taxonomy.csv``, so the folder describes itself.

    Rows are sorted by (person_id, year) and a shard never splits a person (it may exceed ``rows_per_shard``
    by the rest of its last person), so a worker reading one shard sees whole careers. A folder this
    function wrote before is replaced cleanly; a non-empty folder holding anything else is refused.

    Returns:
        The shard paths, in order.

    Raises:
        SchemaError: ``table`` does not conform to the panel schema.
        LaborLMError: ``out_dir`` holds files that are not a panel's.
    """
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    out_dir = Path(out_dir)
    table = sort_panel(schema.conform(table))
    bounds = _person_shards(table.column(schema.PERSON_ID), rows_per_shard)

    def write(folder: Path) -> list[str]:
        names = []
        for k, (start, stop) in enumerate(bounds):
            names.append(f"part-{k:05d}.parquet")
            pq.write_table(table.slice(start, stop - start), folder / names[-1])
        taxonomy.to_csv(folder / TAXONOMY_FILE)
        return names

    names = replace_folder(out_dir, lambda name: name == TAXONOMY_FILE or bool(_SHARD.match(name)), write)
    logger.info(
        "wrote %d rows to %s (%d shard(s), taxonomy %s)", table.num_rows, out_dir, len(names), taxonomy.name
    )
    return [out_dir / name for name in names]


def _person_shards(person_id: pa.ChunkedArray, rows_per_shard: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of about ``rows_per_shard`` rows, cut only where a new person starts."""
    n = len(person_id)
    if n == 0:
        return [(0, 0)]
    pid = person_id.combine_chunks()
    starts = np.flatnonzero(
        np.concatenate([[True], ~np.asarray(pc.equal(pid.slice(1), pid.slice(0, n - 1)))])
    )
    bounds = []
    begin = 0
    while begin < n:
        j = np.searchsorted(starts, begin + rows_per_shard)
        stop = int(starts[j]) if j < len(starts) else n
        bounds.append((begin, stop))
        begin = stop
    return bounds


def write_csv(table: pa.Table, path: str | Path) -> None:
    """Write a panel as one CSV with every schema column (nulls as empty fields), in the table's row order.

    The file is written beside its destination and renamed into place, so a reader never sees half a file.

    Raises:
        SchemaError: ``table`` does not conform to the panel schema.
    """
    path = Path(path)
    table = schema.conform(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_sibling(path)
    try:
        pcsv.write_csv(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("wrote %d rows to %s", table.num_rows, path)
