"""CAREER's split-file format (keyonvafa/career-code ``sample-data/``) -> the canonical schema, and back.

A CAREER folder holds, per split (``train``, ``valid``, ``test``), one file per variable with one person a
line, aligned by line number:

=============  ===========  ===============================================================================
file           column       content of a line
=============  ===========  ===============================================================================
``.job``       occupation   one token per observed year (CAREER's ``unemployed``, ``not_in_labor_force``,
                            ``education`` are the special states)
``.year``      year         one token per job token, strictly increasing (required: without years a career
                            cannot be placed in time)
``.education`` education    one token per job token
``.location``  region       one token
``.ethnicity`` race         one token
``.gender``    gender       one token
``.id``        person_id    one token; LaborLM's addition, like the two below, so that per-person results
                            join back to the survey. Without it a person is ``{split}-{line:06d}``.
                            ``.person_id``, the name LaborLM wrote before, is read the same way
``.source``    source       one token; without it, the ``source`` argument or the folder's name
``.birth_year`` birth_year  one token
=============  ===========  ===============================================================================

Multi-word values use underscores (``black_or_african_american``, ``high_school_diploma``); the schema's
normalisers map them. A missing value is the token ``NA`` (``validate.NULL_TOKENS``), which no canonical
value of a column that can be missing spells. The split of a person is the split of its file.

CAREER files carry no wage, weight or oracle log-probability: ``write_career_files`` drops them (with a
warning), so the exact round trip ``read_career_files(write_career_files(t)) == t`` holds for canonical
tables sorted by (person_id, year), with a ``split`` for every person and those three columns null. A panel
without splits comes back with the splits ``splits.assign_splits`` gives it.

Structure is checked before any value, and each failure names the file and the line: every file of a split
has as many lines as its ``.job`` file, ends with a newline, has no empty line; a time-varying file has as
many tokens on a line as the ``.job`` line; a static file has exactly one; years increase along a line; a
``person_id`` is on one line only; a split's files need its ``.job`` file. A line count mismatch or missing
final newline makes a file unusable (alignment is lost), so it is raised; a bad line rejects that person.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm import schema
from laborlm.errors import ConfigError, InputDataError, LaborLMError
from laborlm.occupations.taxonomy import CAREER_TOKENS, Taxonomy
from laborlm.readers.layout import TAXONOMY_FILE, replace_folder, resolve_taxonomy, source_name
from laborlm.readers.recode import ImportMaps, recode
from laborlm.readers.rejects import RecodeLog, RejectWriter
from laborlm.readers.validate import Dropped, PanelRead, distinct_codes, sort_panel, validate_table
from laborlm.splits import SplitConfig, assign_splits

logger = logging.getLogger(__name__)

# File extension -> canonical column. Order is the order in which line problems are looked for.
TIME_VARYING: dict[str, str] = {"job": schema.OCCUPATION, "year": schema.YEAR, "education": schema.EDUCATION}
STATIC: dict[str, str] = {
    "id": schema.PERSON_ID,
    "source": schema.SOURCE,
    "location": schema.REGION,
    "ethnicity": schema.RACE,
    "gender": schema.GENDER,
    "birth_year": schema.BIRTH_YEAR,
}
KINDS: dict[str, str] = {**TIME_VARYING, **STATIC}
_KIND_OF_FIELD = {column: kind for kind, column in KINDS.items()}
NULL_TOKEN = "NA"
_NOT_WRITTEN = (schema.WAGE, schema.WEIGHT, schema.ORACLE_LOGP)
LEGACY_ID = "person_id"  # the extension LaborLM wrote ids under before ``.id``; still read
_OWNED = re.compile(rf"^({'|'.join(schema.SPLITS)})\.({'|'.join([*KINDS, LEGACY_ID])})$")
_SHOWN_CHARS = 200  # of a bad line, in a reject record
DEFAULT_SPLITS = SplitConfig()


def is_career_folder(path: Path) -> bool:
    """A folder with at least one CAREER split file (``{train,valid,test}.{job,year,...}``)."""
    return any(_OWNED.match(p.name) and p.is_file() for p in path.iterdir())


def read_career_files(
    path: str | Path,
    *,
    taxonomy: Taxonomy | str | Path | None = None,
    rejects: RejectWriter | None = None,
    source: str | None = None,
    maps: ImportMaps | None = None,
) -> PanelRead:
    """Read a CAREER split-file folder into the canonical panel (arguments as in ``read_panel``).

    Row numbers are line numbers: a bad value is reported at its line of the file that holds it (a bad gender
    in ``train.gender``, a bad code in ``train.job``). ``counts`` are person-years; a rejected line counts as
    the number of tokens on its ``.job`` line (at least 1), and gives one reject record.

    Raises:
        InputDataError: a missing ``.year`` file, files of a split that do not line up, a file that is not
            UTF-8 or lacks its final newline (always); a bad line or value when ``rejects`` is None.
        ConfigError: column maps, which have no meaning here: a file's extension names its column.
    """
    folder = Path(path)
    maps = maps or ImportMaps()
    if maps.renames_columns:
        raise ConfigError(
            f"{folder}: --columns and --ignore-columns apply to CSV and Parquet panels; in a CAREER folder "
            "each file's extension names its column"
        )
    both = [
        s for s in schema.SPLITS if (folder / f"{s}.id").exists() and (folder / f"{s}.{LEGACY_ID}").exists()
    ]
    if both:
        raise InputDataError(
            str(folder / f"{both[0]}.{LEGACY_ID}"),
            None,
            schema.PERSON_ID,
            f"both {both[0]}.id and {both[0]}.{LEGACY_ID} hold person ids; keep one",
        )
    splits = [s for s in schema.SPLITS if (folder / f"{s}.job").is_file()]
    for split in schema.SPLITS:
        # A split's other files without its .job would silently drop that split's persons.
        orphans = [
            _file(folder, split, k).name for k in KINDS if k != "job" and _file(folder, split, k).is_file()
        ]
        if split not in splits and orphans:
            raise InputDataError(
                str(_file(folder, split, "job")),
                None,
                schema.OCCUPATION,
                f"missing file: {', '.join(orphans)} {'is' if len(orphans) == 1 else 'are'} there but not "
                f"{split}.job, which every split needs",
            )
    if not splits:
        raise InputDataError(
            str(folder), None, None, "not a CAREER folder: no train.job, valid.job or test.job"
        )
    kinds = ["job", "year"] + [
        k for k in KINDS if k not in ("job", "year") and any(_file(folder, s, k).is_file() for s in splits)
    ]
    for split in splits:
        for kind in kinds:
            if not _file(folder, split, kind).is_file():
                why = "years are required" if kind == "year" else f"other splits have {kind} files"
                raise InputDataError(
                    str(_file(folder, split, kind)), None, KINDS[kind], f"missing file ({why})"
                )

    default_source = source if source is not None else source_name(folder.name)
    parts = [_read_split(folder, split, kinds) for split in splits]
    _flag_repeated_ids(parts)
    built = [_rows(part, kinds, default_source) for part in parts]
    log = RecodeLog()
    raw = recode(pa.concat_tables([table for table, _ in built]), maps, str(folder), log)
    rows = np.concatenate([line for _, line in built])  # [rows] 1-based line of each person-year
    split_of_row = np.repeat(np.arange(len(parts)), [len(line) for _, line in built])
    dropped = [
        Dropped(part.problems[i], max(int(part.n_jobs[i]), 1))
        for part in parts
        for i in sorted(part.problems)
    ]

    def locate(i: int, field: str | None) -> tuple[str, int]:
        kind = _KIND_OF_FIELD.get(field or "", "job")
        return str(_file(folder, splits[split_of_row[i]], kind if kind in kinds else "job")), int(rows[i])

    resolved = resolve_taxonomy(
        taxonomy, folder, distinct_codes(raw.column(schema.OCCUPATION), str(folder)), maps.states
    )
    table, counts = validate_table(
        raw,
        path=str(folder),
        row_numbers=rows,
        taxonomy=resolved,
        rejects=rejects,
        source=default_source,
        locate=locate,
        dropped=dropped,
        recodings=log,
    )
    files = tuple(_file(folder, s, k) for s in splits for k in kinds)
    defaulted = None if "source" in kinds else default_source
    return PanelRead(table, resolved, counts, files, log.entries(), (), defaulted)


@dataclass
class _SplitFiles:
    """One split's files, tokenised, with the first structural problem of each bad line."""

    folder: Path
    split: str
    lines: dict[str, pa.Array]  # kind -> [persons] line text
    tokens: dict[str, pa.ListArray]  # kind -> [persons] tokens of the line
    n_jobs: np.ndarray  # [persons] tokens on each .job line
    problems: dict[int, InputDataError] = field(default_factory=dict)  # 0-based line -> problem

    def path(self, kind: str) -> Path:
        return _file(self.folder, self.split, kind)

    def good_lines(self) -> np.ndarray:
        """0-based indices of the lines without a problem so far."""
        good = np.ones(len(self.n_jobs), dtype=bool)
        good[list(self.problems)] = False
        return np.flatnonzero(good)

    def flag(self, kind: str, bad: np.ndarray, reason: str | Callable[[int], str]) -> None:
        """Reject the lines ``bad`` (0-based indices), unless an earlier check already rejected them.

        ``reason`` is a text, or a function of the line index for reasons that quote the line's counts.
        """
        for line in bad.tolist():
            if line not in self.problems:
                text = self.lines[kind][line].as_py()
                why = reason if isinstance(reason, str) else reason(line)
                self.problems[line] = InputDataError(
                    str(self.path(kind)), line + 1, KINDS[kind], why, text[:_SHOWN_CHARS]
                )


def _file(folder: Path, split: str, kind: str) -> Path:
    """The file of one kind of one split; person ids may be under their legacy name ``.person_id``."""
    path = folder / f"{split}.{kind}"
    if kind == "id" and not path.exists() and (folder / f"{split}.{LEGACY_ID}").exists():
        return folder / f"{split}.{LEGACY_ID}"
    return path


def _lines(path: Path) -> pa.Array:
    """A file's lines (without their newline) as a string array; an empty file has none.

    Raises:
        InputDataError: unreadable, not UTF-8 (with the line), or no newline after the last line.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputDataError(str(path), None, None, f"cannot read file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputDataError(str(path), line, None, "not UTF-8 text; re-encode the file as UTF-8") from None
    if not text:
        return pa.array([], pa.string())
    if not text.endswith("\n"):
        raise InputDataError(
            str(path),
            text.count("\n") + 1,
            None,
            "no newline at the end of the last line (is the file truncated?)",
        )
    return pa.array(text[:-1].split("\n"), pa.string())


def _read_split(folder: Path, split: str, kinds: list[str]) -> _SplitFiles:
    """Read and tokenise one split's files and check their structure.

    Raises:
        InputDataError: a file whose line count differs from the ``.job`` file's (alignment is lost).
    """
    lines = {kind: _lines(_file(folder, split, kind)) for kind in kinds}
    n = len(lines["job"])
    for kind in kinds:
        if len(lines[kind]) != n:
            raise InputDataError(
                str(_file(folder, split, kind)),
                min(len(lines[kind]), n) + 1,
                KINDS[kind],
                f"has {len(lines[kind])} lines but {split}.job has {n}; "
                "every file of a split has one line per person",
            )
    tokens = {kind: _split(lines[kind]) for kind in kinds}
    counts = {
        kind: pc.fill_null(pc.list_value_length(tokens[kind]), 0)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
        for kind in kinds
    }
    part = _SplitFiles(folder, split, lines, tokens, counts["job"])
    part.flag("job", np.flatnonzero(part.n_jobs == 0), "empty line: a person needs at least one job")
    for kind in kinds:
        got = counts[kind]
        if kind in TIME_VARYING:
            part.flag(
                kind,
                np.flatnonzero(got != part.n_jobs),
                partial(_token_count_reason, got, part.n_jobs, split),
            )
        else:
            part.flag(kind, np.flatnonzero(got != 1), partial(_static_reason, got, kind))
    part.flag(
        "year",
        np.flatnonzero(_years_out_of_order(tokens["year"])),
        "years out of order: they must strictly increase along a line",
    )
    return part


def _token_count_reason(got: np.ndarray, n_jobs: np.ndarray, split: str, line: int) -> str:
    return f"has {got[line]} tokens but line {line + 1} of {split}.job has {n_jobs[line]}"


def _static_reason(got: np.ndarray, kind: str, line: int) -> str:
    return f"a .{kind} file holds one token per line, found {got[line]}"


def _split(lines: pa.Array) -> pa.ListArray:
    """Whitespace-separated tokens of each line; a blank line is a null list (pyarrow would give [""])."""
    trimmed = pc.utf8_trim_whitespace(lines)
    return pc.utf8_split_whitespace(pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed))


def _years_out_of_order(year_tokens: pa.ListArray) -> np.ndarray:
    """``[lines]`` True where two consecutive integer years on a line do not increase.

    Tokens that are not integers are left to the row checks, which name the bad token itself.
    """
    out = np.zeros(len(year_tokens), dtype=bool)
    flat = pc.list_flatten(year_tokens)
    if len(flat) < 2:
        return out
    line = pc.list_parent_indices(year_tokens).to_numpy()
    integer = pc.match_substring_regex(flat, r"^[+-]?\d{1,9}$")
    years = pc.if_else(integer, flat, pa.scalar(None, pa.string())).cast(pa.float64())
    values = years.to_numpy(zero_copy_only=False).astype(np.float64)  # NaN where not an integer
    backwards = (line[1:] == line[:-1]) & (values[1:] <= values[:-1])
    out[line[1:][backwards]] = True
    return out


def _flag_repeated_ids(parts: list[_SplitFiles]) -> None:
    """A ``person_id`` on two lines would silently merge two careers: reject every line that repeats one."""
    if not parts or "id" not in parts[0].tokens:
        return  # generated ids are unique by construction
    places: list[tuple[int, np.ndarray]] = []  # (part, 0-based lines still good)
    ids = []
    for k, part in enumerate(parts):
        lines = part.good_lines()
        places.append((k, lines))
        ids.append(pc.list_flatten(part.tokens["id"].take(pa.array(lines))))
    all_ids = pa.chunked_array(ids, pa.string())
    counts = pc.value_counts(all_ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return
    seen: dict[str, list[str]] = {}
    hits: list[tuple[_SplitFiles, int, str]] = []
    for (k, lines), part_ids in zip(places, ids, strict=True):
        part = parts[k]
        for j in np.flatnonzero(np.asarray(pc.is_in(part_ids, repeated))).tolist():
            pid = part_ids[j].as_py()
            seen.setdefault(pid, []).append(f"{part.path('id').name}:{lines[j] + 1}")
            hits.append((part, int(lines[j]), pid))
    for part, line, pid in hits:
        here = f"{part.path('id').name}:{line + 1}"
        others = ", ".join(p for p in seen[pid] if p != here)
        part.flag("id", np.array([line]), f"person_id is on more than one line (also {others})")


def _rows(part: _SplitFiles, kinds: list[str], default_source: str) -> tuple[pa.Table, np.ndarray]:
    """The good lines of a split as a long table of text (one row per person-year) and each row's line."""
    keep = part.good_lines()
    reps = part.n_jobs[keep]
    person_of_row = pa.array(np.repeat(np.arange(len(keep)), reps))  # [rows] index into keep
    columns: dict[str, pa.Array] = {}
    for kind in kinds:
        flat = pc.list_flatten(part.tokens[kind].take(pa.array(keep)))
        columns[KINDS[kind]] = flat if kind in TIME_VARYING else flat.take(person_of_row)
    if "id" not in kinds:
        columns[schema.PERSON_ID] = pa.array([f"{part.split}-{i + 1:06d}" for i in keep], pa.string()).take(
            person_of_row
        )
    n_rows = int(reps.sum())
    if "source" not in kinds:
        columns[schema.SOURCE] = pa.array(np.full(n_rows, default_source, dtype=object), pa.string())
    columns[schema.SPLIT] = pa.array(np.full(n_rows, part.split, dtype=object), pa.string())
    return pa.table(columns), np.repeat(keep, reps) + 1


def write_career_files(
    table: pa.Table, out_dir: str | Path, taxonomy: Taxonomy, split_config: SplitConfig = DEFAULT_SPLITS
) -> None:
    """Write a panel as a CAREER folder that ``read_career_files`` reads back to the same table.

    Persons go to the file of their ``split`` (null splits are derived with ``splits.assign_splits``), sorted
    by person_id, one line each. Special states are written with CAREER's tokens (``not_in_labor_force``,
    ``education``). ``.job``, ``.year``, ``.id`` and ``.source`` are always written; each other
    covariate only if some row has a value, with ``NA`` for a missing one. All three splits are written, empty
    when they have nobody, plus ``taxonomy.csv``. A folder this function wrote before is replaced.

    Raises:
        SchemaError: ``table`` does not conform to the panel schema.
        LaborLMError: a person_id or occupation code contains whitespace (it would split into two tokens), or
            ``out_dir`` holds files that are not a CAREER folder's.
    """
    out_dir = Path(out_dir)
    table = sort_panel(assign_splits(schema.conform(table), split_config))
    unknown_split = pc.invert(pc.is_in(table.column(schema.SPLIT), pa.array(schema.SPLITS)))
    if pc.any(unknown_split).as_py():
        value = table.column(schema.SPLIT).filter(unknown_split)[0].as_py()
        raise LaborLMError(f"split {value!r} is not one of {', '.join(schema.SPLITS)}")
    lost = {c: table.num_rows - table.column(c).null_count for c in _NOT_WRITTEN}
    if any(lost.values()):
        logger.warning(
            "CAREER files carry no %s: %s values not written",
            "/".join(_NOT_WRITTEN),
            ", ".join(f"{v} {c}" for c, v in lost.items() if v),
        )
    for column in (schema.PERSON_ID, schema.OCCUPATION):
        spaced = pc.match_substring_regex(table.column(column), r"(^$|\s)")
        if pc.any(spaced).as_py():
            value = table.column(column).filter(spaced)[0].as_py()
            raise LaborLMError(
                f"{column} {value!r} is empty or contains whitespace; CAREER files separate tokens by spaces"
            )
    kinds = ["job", "year", "id", "source"] + [
        k
        for k in ("education", "location", "ethnicity", "gender", "birth_year")
        if table.column(KINDS[k]).null_count < table.num_rows
    ]
    tokens = {kind: _tokens(table, kind) for kind in kinds}

    def write(folder: Path) -> None:
        for split in schema.SPLITS:
            in_split = np.flatnonzero(np.asarray(pc.equal(table.column(schema.SPLIT), split)))
            pid = table.column(schema.PERSON_ID).take(pa.array(in_split)).combine_chunks()
            n = len(pid)
            new_person = np.ones(n, dtype=bool)
            if n > 1:
                new_person[1:] = ~np.asarray(pc.equal(pid.slice(1), pid.slice(0, n - 1)))
            starts = np.flatnonzero(new_person)  # [persons] first row of each person within the split
            for kind in kinds:
                values = tokens[kind].take(pa.array(in_split))
                if kind in TIME_VARYING:
                    offsets = pa.array(np.append(starts, n).astype(np.int32))
                    per_line = pc.binary_join(pa.ListArray.from_arrays(offsets, values), " ")
                else:
                    per_line = values.take(pa.array(starts))
                body = "".join(line + "\n" for line in per_line.to_pylist())
                _file(folder, split, kind).write_text(body, encoding="utf-8")
        taxonomy.to_csv(folder / TAXONOMY_FILE)

    replace_folder(out_dir, lambda name: name == TAXONOMY_FILE or bool(_OWNED.match(name)), write)
    logger.info("wrote %d rows as CAREER files to %s (%s)", table.num_rows, out_dir, ", ".join(kinds))


def _tokens(table: pa.Table, kind: str) -> pa.Array:
    """``[rows]`` the token written for each row of one file kind: CAREER spellings, ``NA`` for null."""
    column = table.column(KINDS[kind]).combine_chunks()
    if kind == "job":
        encoded = pc.dictionary_encode(column)
        spelled = [CAREER_TOKENS.get(code, code) for code in encoded.dictionary.to_pylist()]
        return pa.array(spelled, pa.string()).take(encoded.indices)
    return pc.fill_null(column.cast(pa.string()), NULL_TOKEN)
