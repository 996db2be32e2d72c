"""Data jobs: import, export, validate, describe and synthesise canonical career panels.

laborlm data import PATH --out DIR [--rejects FILE] [--columns ...] [--map ...] [--states ...] [--titles FILE]
laborlm data export PANEL --format career --out DIR
laborlm data validate PATH [--rejects FILE]
laborlm data stats PATH [--json]
laborlm data synth --preset psid --people 2000 --seed 0 --out runs/psid
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from laborlm.errors import InputDataError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import PanelRead, RejectWriter, read_panel, write_career_files, write_csv, write_panel
from laborlm.readers.recode import ImportMaps
from laborlm.readers.rejects import Recoding
from laborlm.splits import SplitConfig
from laborlm.stats import PanelStats, panel_stats

logger = logging.getLogger(__name__)

ExportFormat = Literal["career", "parquet", "csv"]


@dataclass(frozen=True)
class ValidationSummary:
    path: str
    rows_in: int
    rows_kept: int
    rows_rejected: int
    people: int
    taxonomy: str
    rejects_file: str | None
    recoded: tuple[Recoding, ...] = ()  # every value an import map or a built-in spelling changed
    ignored_columns: tuple[str, ...] = ()
    default_source: str | None = None  # the source given to rows without one

    def line(self) -> str:
        where = f"; rejects in {self.rejects_file}" if self.rejects_file and self.rows_rejected else ""
        return (
            f"{self.path}: rows in {self.rows_in:,} = kept {self.rows_kept:,} + rejected {self.rows_rejected:,}"
            f" ({self.people:,} people, taxonomy {self.taxonomy}){where}"
        )

    def lines(self) -> list[str]:
        """The counts line, then one line per recoded column and kind of recoding, ignored columns, source."""
        out = [self.line()]
        groups: dict[tuple[str, str], list[Recoding]] = {}
        for r in self.recoded:
            groups.setdefault((r.column, r.how), []).append(r)
        for (column, how), items in groups.items():
            if how == "two_digit_years":
                out.append(
                    f"  recoded {column} ({_HOW[how]}): two-digit years -> {items[0].to} on {items[0].rows:,} rows"
                )
                continue
            shown = "; ".join(
                f"{r.value!r} -> {r.to if r.to is not None else 'missing'}: {r.rows:,}"
                for r in items[:_SHOWN]
            )
            more = f"; {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            out.append(f"  recoded {column} ({_HOW[how]}), rows: {shown}{more}")
        if self.ignored_columns:
            out.append(f"  ignored columns: {', '.join(self.ignored_columns)}")
        if self.default_source:
            out.append(f"  every row has source {self.default_source!r} (the data have no source column)")
        return out


_SHOWN = 8  # recodings listed per column
_HOW = {
    "map": "--map",
    "states": "--states",
    "alias": "built-in spelling",
    "two_digit_years": "--two-digit-years",
}


def _read(
    path: Path, taxonomy: str | None, rejects: Path | None, source: str | None, maps: ImportMaps | None
) -> tuple[PanelRead, str | None]:
    if rejects is None:
        return read_panel(path, taxonomy=taxonomy, source=source, maps=maps), None
    with RejectWriter(rejects) as writer:
        return read_panel(path, taxonomy=taxonomy, rejects=writer, source=source, maps=maps), str(rejects)


def _summary(
    path: Path, read: PanelRead, rejects: str | None, taxonomy: Taxonomy | None = None
) -> ValidationSummary:
    c = read.counts
    people = len(set(read.table.column("person_id").to_pylist()))
    name = (taxonomy or read.taxonomy).name
    return ValidationSummary(
        str(path),
        c.rows_in,
        c.rows_kept,
        c.rows_rejected,
        people,
        name,
        rejects,
        read.recoded,
        read.ignored_columns,
        read.default_source,
    )


def validate_data(
    path: Path,
    *,
    taxonomy: str | None = None,
    rejects: Path | None = None,
    source: str | None = None,
    maps: ImportMaps | None = None,
) -> ValidationSummary:
    """Read and validate a panel (Parquet/CSV file or folder, or CAREER split files) without writing it.

    Without ``rejects`` the first problem raises ``InputDataError``; with it, bad rows go to the rejects file.
    ``maps`` are the import maps of ``import_data``, so a survey can be checked exactly as it would import.
    """
    read, rej = _read(path, taxonomy, rejects, source, maps)
    return _summary(path, read, rej)


def import_data(
    path: Path,
    out: Path,
    *,
    taxonomy: str | None = None,
    rejects: Path | None = None,
    source: str | None = None,
    maps: ImportMaps | None = None,
    titles: Path | None = None,
) -> ValidationSummary:
    """Read any supported input, validate it, and write a canonical Parquet panel folder to ``out``.

    Args:
        maps: a survey's column names, value labels, state labels and two-digit years (``readers.recode``).
        titles: a ``code,title`` CSV naming the codes of a coded taxonomy (inferred, or a CSV of bare codes):
            the titles are written with the panel, and are what a language model reads.

    Warns (logging) when the panel's taxonomy still has bare codes, and when rows take the file's stem as
    their ``source`` because neither the data nor ``source`` gave one.
    """
    read, rej = _read(path, taxonomy, rejects, source, maps)
    resolved = read.taxonomy if titles is None else _with_titles(read.taxonomy, titles)
    if resolved.untitled:
        logger.warning(
            "taxonomy '%s': %d of %d occupation codes have no title (e.g. %s): a language model will see bare "
            "codes; pass --titles FILE (a code,title CSV)",
            resolved.name,
            len(resolved.untitled),
            len(resolved.regular_indices),
            ", ".join(repr(c) for c in resolved.untitled[:3]),
        )
    if read.default_source is not None and source is None:
        logger.warning(
            "no source column and no --source: every person is tagged source '%s' (the input's name); "
            "pass --source NAME for a stable dataset tag",
            read.default_source,
        )
    files = write_panel(read.table, out, resolved)
    logger.info("wrote %d shard(s) to %s", len(files), out)
    return _summary(path, read, rej, resolved)


def _with_titles(taxonomy: Taxonomy, path: Path) -> Taxonomy:
    """``taxonomy`` with the titles of a ``code,title`` CSV; special-state rows in it are allowed and skipped.

    Codes of the file that the data never use are skipped with a warning (a slice of a survey may lack a rare
    occupation); a file none of whose codes are in the taxonomy is an error (titles for another scheme).

    Raises:
        InputDataError: an unreadable titles file, or one that names none of the taxonomy's codes.
    """
    titled = Taxonomy.from_csv(path)
    titles = {o.code: o.title for o in titled.occupations if not o.special}
    canonical = {code: taxonomy.normalize(code) for code in titles}
    known = {c: titles[code] for code, c in canonical.items() if c is not None and not taxonomy.is_special(c)}
    unknown = [code for code in titles if canonical[code] is None]
    if not known:
        raise InputDataError(
            str(path),
            None,
            "code",
            f"none of its codes is in the panel's taxonomy '{taxonomy.name}' "
            f"(e.g. {', '.join(unknown[:3])}; the data have {', '.join(taxonomy.codes[:3])}, ...)",
        )
    if unknown:
        logger.warning(
            "titles: %s: %d code(s) not in the data, skipped: %s", path, len(unknown), ", ".join(unknown[:10])
        )
    logger.info("titles: %d of %d codes named from %s", len(known), len(taxonomy.regular_indices), path)
    return taxonomy.with_titles(known)


def export_data(panel: Path, out: Path, *, fmt: ExportFormat, split: SplitConfig | None = None) -> Path:
    """Write a canonical panel as CAREER split files (a folder), a Parquet panel folder, or one CSV file."""
    read = read_panel(panel)
    if fmt == "career":
        write_career_files(read.table, out, read.taxonomy, split or SplitConfig())
    elif fmt == "parquet":
        write_panel(read.table, out, read.taxonomy)
    else:
        write_csv(read.table, out)
    return out


def describe_data(path: Path, *, taxonomy: str | None = None) -> PanelStats:
    read = read_panel(path, taxonomy=taxonomy)
    return panel_stats(read.table, read.taxonomy)
