"""Import maps: a survey's own column names, value labels, state labels and two-digit years -> the schema's.

Real extracts rarely arrive in the panel schema: NLS calls the person ``idcode`` and codes race ``1/2/3``,
a survey says ``home`` for out of the labor force, years are ``68``. Editing the file is how silent bugs get
in, so ``laborlm data import`` takes the mapping instead, and every value it changes is counted::

    laborlm data import nlswork.csv --out runs/nlsw \\
        --columns person_id=idcode,occupation=occ_code --ignore-columns '*' \\
        --map race:1=white,2=black,3=other --map education:0-11=less_than_high_school,12=high_school \\
        --states home=out_of_labor_force --two-digit-years 1900

The maps apply to the raw rows before validation (``validate``), in this order: column names
(:func:`apply_column_map`), then values (:func:`recode`): ``--states`` and ``--map`` labels, two-digit years.
Values are matched after trimming and ignoring case; a ``--map`` key ``LO-HI`` matches the whole numbers
``LO..HI`` (years of schooling, occupation code ranges). A target ``NA`` (or nothing) makes the value missing.
The validator then applies the schema's built-in spellings (``hisp`` -> ``hispanic``) and counts those too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm import schema
from laborlm.errors import ConfigError, InputDataError
from laborlm.occupations.taxonomy import special_state
from laborlm.readers.rejects import RecodeLog
from laborlm.readers.validate import NULL_TOKENS, text_column

logger = logging.getLogger(__name__)

MAPPABLE: tuple[str, ...] = (schema.OCCUPATION, *schema.CATEGORICAL_NORMALIZERS)  # columns --map may recode
ALL_OTHERS = "*"  # --ignore-columns '*': every column that is neither in the schema nor mapped
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_WHOLE = re.compile(r"^\d+(\.0+)?$")
_TWO_DIGITS = re.compile(r"^\d{1,2}(\.0+)?$")
_YEAR_COLUMNS = (schema.YEAR, schema.BIRTH_YEAR)
# --two-digit-years START must map 0..99 into schema.YEAR_RANGE.
TWO_DIGIT_START_RANGE = (schema.YEAR_RANGE[0], schema.YEAR_RANGE[1] - 99)


@dataclass(frozen=True)
class ImportMaps:
    """How a survey's file differs from the panel schema; the empty default changes nothing."""

    columns: Mapping[str, str] = field(default_factory=dict)  # schema column -> the file's column
    ignore_columns: tuple[str, ...] = ()  # file columns left out; ("*",) = every column not in the schema
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # column -> {label or LO-HI: value}
    states: Mapping[str, str] = field(default_factory=dict)  # the survey's occupation label -> special state
    two_digit_years: int | None = None  # START: year (and birth_year) 0..99 -> the year in START..START+99

    def __post_init__(self) -> None:
        problems: list[str] = []
        for column in self.columns:
            if column not in schema.COLUMNS:
                problems.append(
                    f"--columns: {column!r} is not a panel column; allowed: {', '.join(schema.COLUMNS)}"
                )
        mapped = list(self.columns.values())
        problems += [
            f"--columns: file column {c!r} is mapped twice"
            for c in sorted(set(mapped))
            if mapped.count(c) > 1
        ]
        for column, pairs in self.values.items():
            if column not in MAPPABLE:
                problems.append(f"--map {column}: only {', '.join(MAPPABLE)} take value maps")
                continue
            for label, target in pairs.items():
                range_ = _RANGE.match(label.strip())
                if not label.strip():
                    problems.append(f"--map {column}: an empty label")
                elif range_ and int(range_.group(1)) > int(range_.group(2)):
                    problems.append(f"--map {column}:{label}: the range is empty")
                if column in schema.CATEGORICAL_NORMALIZERS and target.strip() not in NULL_TOKENS:
                    normalize, allowed = schema.CATEGORICAL_NORMALIZERS[column]
                    if normalize(target) is None:
                        problems.append(
                            f"--map {column}:{label}={target}: {target!r} is not a valid {column}; "
                            f"allowed: {', '.join(allowed)} (or NA for missing)"
                        )
        for label, state in self.states.items():
            if not label.strip():
                problems.append("--states: an empty label")
            if special_state(state) is None:
                problems.append(
                    f"--states {label}={state}: {state!r} is not a special state; "
                    "use unemployed, out_of_labor_force or in_school"
                )
        occupation_labels = {k.strip().lower() for k in self.values.get(schema.OCCUPATION, {})}
        problems += [
            f"--states {label}: the label also has an --map occupation entry; keep one"
            for label in self.states
            if label.strip().lower() in occupation_labels
        ]
        low, high = TWO_DIGIT_START_RANGE
        if self.two_digit_years is not None and not low <= self.two_digit_years <= high:
            problems.append(
                f"--two-digit-years: {self.two_digit_years} must be a year in {low}..{high} "
                f"(two-digit years become START..START+99), e.g. 1900"
            )
        if problems:
            raise ConfigError(problems, source="command line")

    @classmethod
    def from_flags(
        cls,
        *,
        columns: str | None = None,
        ignore_columns: str | None = None,
        maps: Sequence[str] = (),
        states: str | None = None,
        two_digit_years: int | None = None,
    ) -> ImportMaps:
        """Parse the command-line forms: ``a=b,c=d``; ``--map COLUMN:LABEL=VALUE[,LABEL=VALUE...]`` (repeatable).

        Raises:
            ConfigError: a malformed flag or a map that cannot apply (all problems at once).
        """
        problems: list[str] = []
        values: dict[str, dict[str, str]] = {}
        for spec in maps:
            column, sep, pairs = spec.partition(":")
            if not sep or not column.strip():
                problems.append(f"--map {spec!r}: expected COLUMN:LABEL=VALUE[,LABEL=VALUE...]")
                continue
            values.setdefault(column.strip().lower(), {}).update(_pairs(pairs, f"--map {column}", problems))
        ignored = tuple(c.strip() for c in (ignore_columns or "").split(",") if c.strip())
        column_map = {k.lower(): v for k, v in _pairs(columns or "", "--columns", problems).items()}
        state_map = _pairs(states or "", "--states", problems)
        try:
            parsed = cls(column_map, ignored, values, state_map, two_digit_years)
        except ConfigError as exc:
            problems += exc.problems  # report the malformed flags and the maps that cannot apply together
        if problems:
            raise ConfigError(problems, source="command line")
        return parsed

    @property
    def empty(self) -> bool:
        return not (self.columns or self.ignore_columns or self.values or self.states or self.two_digit_years)

    @property
    def renames_columns(self) -> bool:
        return bool(self.columns or self.ignore_columns)


def _pairs(text: str, flag: str, problems: list[str]) -> dict[str, str]:
    """``a=b,c=d`` -> {a: b, c: d}; malformed items and repeated keys go to ``problems``."""
    out: dict[str, str] = {}
    for item in (i for i in text.split(",") if i.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"{flag}: {item!r} is not KEY=VALUE")
        elif key.strip() in out:
            problems.append(f"{flag}: {key.strip()!r} is given twice")
        else:
            out[key.strip()] = value.strip()
    return out


def apply_column_map(table: pa.Table, maps: ImportMaps, path: str) -> tuple[pa.Table, tuple[str, ...]]:
    """Rename the file's columns to the schema's (``--columns``) and leave out ``--ignore-columns``.

    File columns are matched exactly, else ignoring case and surrounding spaces.

    Returns:
        The table and the names of the columns left out.

    Raises:
        InputDataError: a mapped or ignored column that the file does not have (the file's columns listed).
    """
    names = list(table.column_names)

    def find(name: str, flag: str) -> int:
        if name in names:
            return names.index(name)
        folded = [n.strip().lower() for n in names]
        if name.strip().lower() in folded:
            return folded.index(name.strip().lower())
        shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
        raise InputDataError(
            path, None, None, f"{flag}: the file has no column {name!r}; its columns: {shown}"
        )

    renamed = list(names)
    for canonical, file_column in maps.columns.items():
        renamed[find(file_column, f"--columns {canonical}={file_column}")] = canonical
    drop: set[int] = set()
    for name in maps.ignore_columns:
        if name == ALL_OTHERS:
            drop |= {i for i, n in enumerate(renamed) if n.strip().lower() not in schema.COLUMNS}
        else:
            drop.add(find(name, f"--ignore-columns {name}"))
    keep = [i for i in range(len(names)) if i not in drop]
    out = table.select(keep).rename_columns([renamed[i] for i in keep])
    return out, tuple(names[i] for i in sorted(drop))


def recode(raw: pa.Table, maps: ImportMaps, path: str, log: RecodeLog) -> pa.Table:
    """Apply ``--states``, ``--map`` and ``--two-digit-years`` to a raw table with canonical column names.

    Recoded columns come back as text (the validator parses text and typed columns alike); each changed value
    is counted in ``log`` with the number of input rows that held it.
    """
    for column in raw.column_names:
        pairs = dict(maps.values.get(column, {}))
        how = {label: "map" for label in pairs}
        if column == schema.OCCUPATION:
            pairs.update(maps.states)
            how.update(dict.fromkeys(maps.states, "states"))
        if pairs:
            raw = _set(raw, column, _map_values(raw.column(column), pairs, how, path, column, log))
        if column in _YEAR_COLUMNS and maps.two_digit_years is not None:
            raw = _set(raw, column, _widen_years(raw.column(column), maps.two_digit_years, path, column, log))
    return raw


def _set(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(column), column, values)


def _map_values(
    column: pa.ChunkedArray, pairs: dict[str, str], how: dict[str, str], path: str, name: str, log: RecodeLog
) -> pa.Array:
    """Map each distinct value once (a 10M-row column has a few hundred distinct values)."""
    exact = {
        label.strip().lower(): (target, how[label])
        for label, target in pairs.items()
        if not _RANGE.match(label)
    }
    ranges = [
        (int(m.group(1)), int(m.group(2)), target, how[label])
        for label, target in pairs.items()
        if (m := _RANGE.match(label.strip()))
    ]
    encoded = pc.dictionary_encode(text_column(column, path, name))
    distinct: list[str | None] = encoded.dictionary.to_pylist()
    rows = np.bincount(
        pc.fill_null(encoded.indices, len(distinct)).to_numpy(zero_copy_only=False),
        minlength=len(distinct) + 1,
    )
    out: list[str | None] = []
    for k, value in enumerate(distinct):
        hit = _lookup(value, exact, ranges)
        if hit is None or value is None:
            out.append(value)
            continue
        target, kind = hit
        missing = target.strip() in NULL_TOKENS
        out.append("" if missing else target)
        log.add(name, value, None if missing else target, int(rows[k]), kind)
    return pa.array(out, pa.string()).take(encoded.indices)


def _lookup(
    value: str | None, exact: dict[str, tuple[str, str]], ranges: list[tuple[int, int, str, str]]
) -> tuple[str, str] | None:
    if value is None:
        return None
    key = value.strip().lower()
    if key in exact:
        return exact[key]
    if _WHOLE.match(key):
        number = int(float(key))
        for low, high, target, kind in ranges:
            if low <= number <= high:
                return target, kind
    return None


def _widen_years(column: pa.ChunkedArray, start: int, path: str, name: str, log: RecodeLog) -> pa.Array:
    """Years ``0..99`` -> the year in ``start..start+99`` with the same last two digits; others unchanged."""
    encoded = pc.dictionary_encode(text_column(column, path, name))
    distinct: list[str | None] = encoded.dictionary.to_pylist()
    rows = np.bincount(
        pc.fill_null(encoded.indices, len(distinct)).to_numpy(zero_copy_only=False),
        minlength=len(distinct) + 1,
    )
    out: list[str | None] = []
    full_years: list[int] = []
    widened = 0
    for k, value in enumerate(distinct):
        if value is None or not _TWO_DIGITS.match(value):
            out.append(value)
            continue
        # start 1930: 30..99 -> 1930..1999 and 0..29 -> 2000..2029
        full_years.append(start + (int(float(value)) - start % 100) % 100)
        out.append(str(full_years[-1]))
        widened += int(rows[k])
    if full_years:
        log.add(name, "two-digit", f"{min(full_years)}..{max(full_years)}", widened, "two_digit_years")
    return pa.array(out, pa.string()).take(encoded.indices)
