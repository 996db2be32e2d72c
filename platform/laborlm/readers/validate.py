"""Turn a table as read from a user's file into the canonical panel, rejecting what does not fit the schema.

Every reader (CSV, Parquet, CAREER split files) ends here, so the rules below hold for every input:

* Columns are matched to ``schema.COLUMNS`` ignoring case and surrounding spaces. A missing required column
  (``person_id``, ``year``, ``occupation``) or an unknown column is a whole-file error: guessing what a
  column means is how a silent bug gets in.
* Values may arrive as text (CSV, CAREER files) or typed (Parquet). Text is trimmed. In the nullable columns
  of the schema, an empty field and the tokens in ``NULL_TOKENS`` (``NA``, ``NaN``, ``null``, ...) mean null,
  and so does NaN in a typed float column. In ``person_id``, ``year``, ``occupation`` and ``source`` only an
  empty field is missing; a missing ``source`` takes the reader's ``source`` argument.
* Row checks: ``person_id`` non-empty; ``year`` an integer in ``schema.YEAR_RANGE``; ``birth_year`` an
  integer in ``BIRTH_YEAR_RANGE``; ``wage``, ``weight``, ``oracle_logp`` finite numbers and ``weight >= 0``;
  ``education``, ``gender``, ``race``, ``region`` known after the schema's normalisers (the canonical value
  is stored); ``occupation`` known to the taxonomy (the canonical code is stored); ``source`` matches
  ``schema.SOURCE_PATTERN``; ``split`` one of ``schema.SPLITS``.
* Person checks, which no row can fail alone: a repeated (person, year) or a static column
  (``schema.STATIC_COLUMNS``) that is not constant within a person rejects *all* of that person's rows,
  because nothing says which of the rows is the right one. Null counts as a value here: a person whose
  gender is ``female`` in one year and missing in another is rejected rather than silently filled in.

Checks are boolean masks computed with pyarrow/numpy over the whole table (10M-row panels are normal);
Python loops run only over failing rows and failing persons. Without a :class:`RejectWriter`, the first
problem is raised as an :class:`InputDataError` whose ``more`` counts the others: a line the reader could not
turn into a row (its structural problems come first), else the earliest bad row in input order. With one,
each bad row is written once (with its first problem and a count of the others) and the good rows come back.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm import schema
from laborlm.errors import InputDataError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers.rejects import ReadCounts, RecodeLog, Recoding, RejectWriter

logger = logging.getLogger(__name__)

NULL_TOKENS: tuple[str, ...] = ("", "NA", "N/A", "na", "NaN", "nan", "null", "NULL")
# Birth years reach further back than observation years: a 1968 survey wave can include people born in 1880.
BIRTH_YEAR_RANGE = (schema.YEAR_RANGE[0] - 100, schema.YEAR_RANGE[1])
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NULLABLE = frozenset(f.name for f in schema.PANEL_SCHEMA if f.nullable)
_MAX_LISTED = 12

Locate = Callable[[int, str | None], tuple[str, int]]
"""Maps (row index in the raw table, field) to (file, 1-based row or line) as the user sees them."""


@dataclass(frozen=True)
class PanelRead:
    """What a reader returns: the canonical panel and everything needed to interpret and account for it."""

    table: pa.Table  # schema.PANEL_SCHEMA, sorted by (person_id, year)
    taxonomy: Taxonomy  # the codes of table's occupation column
    counts: ReadCounts
    files: tuple[Path, ...]  # the data files read, in reading order
    recoded: tuple[Recoding, ...] = ()  # every value that an import map or a built-in spelling changed
    ignored_columns: tuple[str, ...] = ()  # the file's columns left out (``--ignore-columns``)
    default_source: str | None = None  # the source of rows that had none; None when every row had its own


class Dropped(NamedTuple):
    """A problem a reader found before a table existed (a ragged CSV line, a misaligned CAREER line).

    ``rows`` is how many person-years it stands for, so that the counts still add up.
    """

    problem: InputDataError
    rows: int


@dataclass
class _Check:
    """One failed rule: which rows fail it, and why (one reason, or one per row for person-level rules)."""

    field: str
    mask: np.ndarray  # [n] bool over the raw table's rows
    reason: str | dict[int, str]


def canonical_columns(table: pa.Table, path: str) -> pa.Table:
    """Rename columns to their canonical names; missing required or unknown columns raise.

    Raises:
        InputDataError: (whole file, ``row`` None) naming every missing and every unknown column and listing
            the schema's columns, so one message is enough to fix a header.
    """
    names = [name.strip().lower() for name in table.column_names]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise InputDataError(
            path, None, repeated[0], f"column(s) {', '.join(map(repr, repeated))} appear more than once"
        )
    missing = [c for c in schema.REQUIRED_COLUMNS if c not in names]
    unknown = [orig for orig, n in zip(table.column_names, names, strict=True) if n not in schema.COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing required column(s) {', '.join(missing)}")
        if unknown:
            shown = ", ".join(map(repr, unknown[:_MAX_LISTED]))
            more = f" and {len(unknown) - _MAX_LISTED} more" if len(unknown) > _MAX_LISTED else ""
            parts.append(f"unknown column(s) {shown}{more}")
        parts.append(f"the panel schema has columns {', '.join(schema.COLUMNS)}")
        raise InputDataError(path, None, missing[0] if missing else None, "; ".join(parts))
    return table.rename_columns(names)


def text_column(column: pa.ChunkedArray | pa.Array, path: str, field: str) -> pa.Array:
    """A column as one trimmed ``string`` array, whatever Parquet type it came with (ints become digits).

    Raises:
        InputDataError: the column's type has no text form (lists, structs, binary that is not UTF-8).
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type != pa.string():
        try:
            arr = arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputDataError(
                path, None, field, f"column of type {arr.type} cannot be read as text ({exc})"
            ) from None
    return pc.utf8_trim_whitespace(arr)


def distinct_codes(column: pa.ChunkedArray | pa.Array, path: str) -> list[str]:
    """The distinct non-empty occupation spellings of a raw column (what taxonomy inference looks at)."""
    values = pc.unique(text_column(column, path, schema.OCCUPATION)).to_pylist()
    return [v for v in values if v]


def _bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean pyarrow result as a numpy bool array, null counting as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _encode(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Distinct values and, per row, the index of its value; index ``len(values)`` marks a null row."""
    encoded = pc.dictionary_encode(text)
    codes = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return encoded.dictionary, np.asarray(codes, dtype=np.int64)


class _Parsed(NamedTuple):
    values: pa.Array  # [n] canonical typed values, null where missing or invalid
    missing: np.ndarray  # [n] bool
    invalid: np.ndarray  # [n] bool


def _parse_text(
    text: pa.Array,
    normalize: Callable[[str], str | None],
    nulls: frozenset[str],
    recodings: tuple[RecodeLog, str] | None = None,
) -> _Parsed:
    """Normalise each distinct value once (a column of 10M rows has a few hundred distinct codes).

    With ``recodings`` (a log and the column's name), every value that a built-in spelling turned into another
    value (``hisp`` -> ``hispanic``, ``college`` -> ``bachelors``; not mere case, spacing or zero padding) is
    counted with its number of rows.
    """
    dictionary, codes = _encode(text)
    values: list[str] = dictionary.to_pylist()
    canon = [None if v in nulls else normalize(v) for v in values] + [None]
    missing = np.array([v in nulls for v in values] + [True], dtype=bool)
    invalid = np.array([c is None for c in canon], dtype=bool) & ~missing
    if recodings is not None:
        log, column = recodings
        changed = [k for k, v in enumerate(values) if canon[k] is not None and not _same_value(v, canon[k])]
        if changed:
            rows = np.bincount(codes, minlength=len(canon))
            for k in changed:
                log.add(column, values[k], canon[k], int(rows[k]), "alias")
    return _Parsed(pa.array(canon, pa.string()).take(pa.array(codes)), missing[codes], invalid[codes])


def _same_value(raw: str, canonical: str | None) -> bool:
    """Whether normalising only changed case, spacing or zero padding (not worth reporting as a recoding)."""
    if canonical is None:
        return True
    if re.sub(r"[\s\-/]+", "_", raw.strip().lower()) == canonical.lower():
        return True
    number = r"^\d+(\.0+)?$"
    return bool(re.match(number, raw.strip()) and re.match(number, canonical)) and int(float(raw)) == int(
        float(canonical)
    )


def _parse_number(
    column: pa.ChunkedArray, path: str, field: str, nulls: frozenset[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values [n] float64, missing [n], malformed [n]); text is parsed once per distinct value.

    Raises:
        InputDataError: a typed column whose type is not numeric (a boolean year, a timestamp wage).
    """
    arr = column.combine_chunks()
    if any(
        is_type(arr.type)
        for is_type in (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_null)
    ):
        # Unsafe: an int64 beyond 2**53 rounds instead of raising; such a value fails the range checks anyway.
        values = arr.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False).astype(np.float64)
        # NaN in a typed float column is how pandas writes a missing value.
        return values, np.isnan(values), np.zeros(len(values), dtype=bool)
    if not (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_dictionary(arr.type)
    ):
        raise InputDataError(path, None, field, f"column of type {arr.type} is not numeric")
    # Row-wise regexes rather than one parse per distinct value: wages are nearly all distinct, and hashing
    # them costs more than matching them.
    text = text_column(arr, path, field)
    null_pattern = "^(" + "|".join(re.escape(token) for token in sorted(nulls)) + ")$"
    missing = np.asarray(pc.fill_null(pc.match_substring_regex(text, null_pattern), True), dtype=bool)
    well_formed = _bools(pc.match_substring_regex(text, _NUMBER))
    parsed = pc.if_else(pa.array(well_formed), text, pa.scalar(None, pa.string())).cast(pa.float64())
    values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)  # NaN where not parsed
    return values, missing, ~well_formed & ~missing


def validate_table(
    raw: pa.Table,
    *,
    path: str,
    row_numbers: np.ndarray,
    taxonomy: Taxonomy,
    rejects: RejectWriter | None,
    source: str | None,
    locate: Locate | None = None,
    dropped: Sequence[Dropped] = (),
    recodings: RecodeLog | None = None,
) -> tuple[pa.Table, ReadCounts]:
    """Check a raw table against the panel schema and return it canonical, sorted by (person_id, year).

    Args:
        raw: the rows as read, columns named as in the file (text or typed).
        path: the file (or folder) named by whole-input errors.
        row_numbers: ``[raw.num_rows]`` 1-based row or line of each raw row in ``path`` (a CSV header is
            line 1, so its first data row is 2; Parquet rows count from 1).
        taxonomy: the occupation codes accepted; codes are stored in its canonical spelling.
        rejects: where bad rows go; None means raise on the first problem.
        source: the ``source`` of rows that have none (required when the table has no ``source`` column).
        locate: for tables gathered from several files: maps (raw row index, field) to the (file, row) to
            report. Defaults to ``(path, row_numbers[i])``.
        dropped: problems the reader found in lines that never became rows of ``raw``.
        recodings: where to count the values that a built-in spelling changed (of all input rows).

    Returns:
        The canonical table (``schema.PANEL_SCHEMA``) and the row counts, including ``dropped``.

    Raises:
        InputDataError: a whole-input problem (missing or unknown columns, an unusable column type, an invalid
            ``source``) always; the first row problem when ``rejects`` is None (``more`` counts the rest).
    """
    if len(row_numbers) != raw.num_rows:
        raise ValueError(f"row_numbers has {len(row_numbers)} entries for {raw.num_rows} rows")
    where: Locate = locate or (lambda i, _field: (path, int(row_numbers[i])))
    raw = canonical_columns(raw, path)
    if source is not None and not schema.SOURCE_PATTERN.match(source):
        raise InputDataError(
            path, None, schema.SOURCE, f"source does not match {schema.SOURCE_PATTERN.pattern}", source
        )
    if schema.SOURCE not in raw.column_names and source is None:
        raise InputDataError(
            path, None, schema.SOURCE, "the table has no 'source' column and no source was given"
        )

    columns, checks = _check_rows(raw, path, taxonomy, source, recodings)
    n = raw.num_rows
    first = np.full(n, -1, dtype=np.int64)  # [n] index into checks of each row's first problem
    n_problems = np.zeros(n, dtype=np.int64)  # [n]
    for k, check in enumerate(checks):
        first[check.mask & (first < 0)] = k
        n_problems += check.mask

    good = np.flatnonzero(first < 0)
    good = good[_sort_order(columns, good)]
    for check in _check_persons(columns, good, n):
        checks.append(check)
        first[check.mask & (first < 0)] = len(checks) - 1
        n_problems += check.mask
    kept = good[first[good] < 0]

    bad_rows = np.flatnonzero(first >= 0)
    rows_dropped = sum(d.rows for d in dropped)
    counts = ReadCounts(n + rows_dropped, len(kept), len(bad_rows) + rows_dropped)
    total_problems = int(n_problems.sum()) + len(dropped)
    if total_problems and rejects is None:
        if dropped:
            head = dropped[0].problem
        else:
            head = _problem(raw, where, checks[first[bad_rows[0]]], int(bad_rows[0]), 1)
        raise InputDataError(
            head.path, head.row, head.field, head.reason, head.value, more=total_problems - 1
        )
    if rejects is not None:
        rejects.write_all(d.problem for d in dropped)
        rejects.write_all(
            _problem(raw, where, checks[first[i]], int(i), int(n_problems[i])) for i in bad_rows
        )

    table = pa.table({name: values.take(pa.array(kept)) for name, values in columns.items()})
    table = schema.conform(table)
    log = logger.warning if counts.rows_rejected else logger.info
    log(
        "%s: %d rows in, %d kept, %d rejected%s",
        path,
        counts.rows_in,
        counts.rows_kept,
        counts.rows_rejected,
        f" (see {rejects.path})" if rejects is not None and counts.rows_rejected else "",
    )
    return table, counts


def sort_panel(table: pa.Table) -> pa.Table:
    """The canonical row order, (person_id, year): what every reader returns and every writer relies on."""
    order = pc.sort_indices(table, [(schema.PERSON_ID, "ascending"), (schema.YEAR, "ascending")])
    return table.take(order)


def _problem(raw: pa.Table, where: Locate, check: _Check, i: int, n_problems: int) -> InputDataError:
    """The reportable form of row ``i``'s first problem (built only for failing rows)."""
    file, row = where(i, check.field)
    value = raw.column(check.field)[i].as_py() if check.field in raw.column_names else None
    reason = check.reason if isinstance(check.reason, str) else check.reason[i]
    if n_problems > 1:
        reason += f" (+{n_problems - 1} more problem{'s' if n_problems > 2 else ''} in this row)"
    return InputDataError(file, row, check.field, reason, value)


def _check_rows(
    raw: pa.Table, path: str, taxonomy: Taxonomy, source: str | None, recodings: RecodeLog | None = None
) -> tuple[dict[str, pa.Array], list[_Check]]:
    """Parse every present column to its canonical type and collect the row-level checks, in column order."""
    columns: dict[str, pa.Array] = {}
    checks: list[_Check] = []
    n = raw.num_rows
    present = [c for c in schema.COLUMNS if c in raw.column_names]
    for name in present:
        nulls = frozenset(NULL_TOKENS) if name in _NULLABLE else frozenset({""})
        column = raw.column(name)
        if name == schema.PERSON_ID:
            text = text_column(column, path, name)
            columns[name] = text
            checks.append(_Check(name, _bools(pc.equal(pc.fill_null(text, ""), "")), "empty person_id"))
        elif name in (schema.YEAR, schema.BIRTH_YEAR):
            low, high = schema.YEAR_RANGE if name == schema.YEAR else BIRTH_YEAR_RANGE
            values, missing, malformed = _parse_number(column, path, name, nulls)
            with np.errstate(invalid="ignore"):
                not_int = ~missing & ~malformed & (np.floor(values) != values)
                out_of_range = ~missing & ~malformed & ~not_int & ((values < low) | (values > high))
                two_digit = out_of_range & (values >= 0) & (values < 100)
            ok = ~(missing | malformed | not_int | out_of_range)
            if name == schema.YEAR:
                checks.append(_Check(name, missing, "missing year"))
            checks.append(_Check(name, malformed | not_int, "not an integer year"))
            checks.append(
                _Check(
                    name,
                    two_digit,
                    f"{name} outside {low}..{high}; two-digit years? `laborlm data import --two-digit-years 1900`",
                )
            )
            checks.append(_Check(name, out_of_range & ~two_digit, f"{name} outside {low}..{high}"))
            columns[name] = pa.array(np.where(ok, values, 0).astype(np.int32), pa.int32(), mask=~ok)
        elif name in (schema.WAGE, schema.WEIGHT, schema.ORACLE_LOGP):
            values, missing, malformed = _parse_number(column, path, name, nulls)
            bad = malformed | (~missing & ~np.isfinite(values))
            checks.append(_Check(name, bad, "not a finite number"))
            ok = ~(missing | bad)
            if name == schema.WEIGHT:
                negative = ok & (values < 0)
                checks.append(_Check(name, negative, "negative weight (weights must be >= 0)"))
                ok &= ~negative
            columns[name] = pa.array(np.where(ok, values, 0.0), pa.float64(), mask=~ok)
        else:
            normalize, reason = _text_rule(name, taxonomy)
            counted = name == schema.OCCUPATION or name in schema.CATEGORICAL_NORMALIZERS
            log = (recodings, name) if recodings is not None and counted else None
            parsed = _parse_text(text_column(column, path, name), normalize, nulls, log)
            values = parsed.values
            if name == schema.OCCUPATION:
                checks.append(_Check(name, parsed.missing, "missing occupation"))
            if name == schema.SOURCE and source is not None:
                values = pc.if_else(pa.array(parsed.missing), pa.scalar(source), values)
            elif name == schema.SOURCE:
                checks.append(_Check(name, parsed.missing, "missing source (and no source was given)"))
            checks.append(_Check(name, parsed.invalid, reason))
            columns[name] = values
    if schema.SOURCE not in columns:
        columns[schema.SOURCE] = pa.array(np.full(n, source, dtype=object), pa.string())
    return columns, checks


def _text_rule(name: str, taxonomy: Taxonomy) -> tuple[Callable[[str], str | None], str]:
    """The normaliser of a text column and the reason given when it returns None."""
    if name == schema.OCCUPATION:
        hint = (
            " (another coding scheme? `laborlm data import --taxonomy CODES.csv`, a code,title CSV)"
            if taxonomy.name == "occ1990dd"
            else ""
        )
        return taxonomy.normalize, f"not a code of the occupation taxonomy '{taxonomy.name}'{hint}"
    if name == schema.SOURCE:
        return (lambda v: v if schema.SOURCE_PATTERN.match(v) else None), (
            f"source does not match {schema.SOURCE_PATTERN.pattern} (lower-case letters, digits and '_')"
        )
    if name == schema.SPLIT:
        return (lambda v: v.lower() if v.lower() in schema.SPLITS else None), (
            f"not a split; allowed: {', '.join(schema.SPLITS)}, or empty to derive it from person_id"
        )
    normalize, allowed = schema.CATEGORICAL_NORMALIZERS[name]
    if name == schema.REGION:
        return normalize, f"not a region; allowed: {', '.join(schema.REGIONS)} or a US state postal code"
    return normalize, f"not a valid {name}; allowed: {', '.join(allowed)}"


def _sort_order(columns: dict[str, pa.Array], rows: np.ndarray) -> np.ndarray:
    """Positions sorting ``rows`` by (person_id, year); stable, so repeated person-years keep input order."""
    keys = pa.table(
        {"p": columns[schema.PERSON_ID].take(pa.array(rows)), "y": columns[schema.YEAR].take(pa.array(rows))}
    )
    order = pc.sort_indices(keys, [("p", "ascending"), ("y", "ascending")])
    return np.asarray(order.to_numpy(), dtype=np.int64)


def _check_persons(columns: dict[str, pa.Array], rows: np.ndarray, n: int) -> list[_Check]:
    """Rules over a person's rows: unique years, constant static columns.

    ``rows`` are raw-table indices sorted by (person_id, year); ``n`` is the raw table's length.
    """
    if len(rows) < 2:
        return []
    take = pa.array(rows)
    pid = columns[schema.PERSON_ID].take(take)
    # same[j]: sorted row j belongs to the same person as sorted row j - 1.
    same = np.concatenate([[False], _bools(pc.equal(pid.slice(1), pid.slice(0, len(rows) - 1)))])
    starts = np.flatnonzero(~same)  # first sorted row of each person
    person = np.cumsum(~same) - 1  # [len(rows)] person number of each sorted row
    ends = np.append(starts[1:], len(rows))
    checks = []
    rules = [(schema.YEAR, "duplicate")] + [(c, "static") for c in schema.STATIC_COLUMNS if c in columns]
    for name, kind in rules:
        values = columns[name].take(take)
        a, b = values.slice(1), values.slice(0, len(rows) - 1)
        differ = _bools(pc.not_equal(a, b)) | (_bools(pc.is_null(a)) != _bools(pc.is_null(b)))
        broken = same & np.concatenate([[False], ~differ if kind == "duplicate" else differ])
        if not broken.any():
            continue
        mask = np.zeros(n, dtype=bool)
        reasons: dict[int, str] = {}
        for p in np.unique(person[broken]):
            sl = slice(starts[p], ends[p])
            members = rows[sl]
            k = len(members)
            pid_p = pid[int(starts[p])].as_py()
            if kind == "duplicate":
                repeated = sorted({values[int(j)].as_py() for j in np.flatnonzero(broken[sl]) + starts[p]})
                reason = (
                    f"person {pid_p!r} has year {', '.join(map(str, repeated))} more than once; "
                    f"all {k} rows of this person are rejected"
                )
            else:
                seen = list(dict.fromkeys(values.slice(int(starts[p]), k).to_pylist()))
                reason = (
                    f"static column '{name}' is not constant for person {pid_p!r} "
                    f"({', '.join(map(repr, seen))}); all {k} rows of this person are rejected"
                )
            mask[members] = True
            reasons.update(dict.fromkeys(members.tolist(), reason))
        checks.append(_Check(name, mask, reasons))
    return checks
