"""Data jobs: import, export, validate, describe and synthesise canonical career panels.

    laborlm data import PATH --out DIR [--rejects FILE]
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

from laborlm.readers import PanelRead, RejectWriter, read_panel, write_career_files, write_csv, write_panel
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

    def line(self) -> str:
        where = f"; rejects in {self.rejects_file}" if self.rejects_file and self.rows_rejected else ""
        return (
            f"{self.path}: rows in {self.rows_in:,} = kept {self.rows_kept:,} + rejected {self.rows_rejected:,}"
            f" ({self.people:,} people, taxonomy {self.taxonomy}){where}"
        )


def _read(path: Path, taxonomy: str | None, rejects: Path | None, source: str | None) -> tuple[PanelRead, str | None]:
    if rejects is None:
        return read_panel(path, taxonomy=taxonomy, source=source), None
    with RejectWriter(rejects) as writer:
        return read_panel(path, taxonomy=taxonomy, rejects=writer, source=source), str(rejects)


def _summary(path: Path, read: PanelRead, rejects: str | None) -> ValidationSummary:
    c = read.counts
    people = len(set(read.table.column("person_id").to_pylist()))
    return ValidationSummary(str(path), c.rows_in, c.rows_kept, c.rows_rejected, people, read.taxonomy.name, rejects)


def validate_data(path: Path, *, taxonomy: str | None = None, rejects: Path | None = None, source: str | None = None) -> ValidationSummary:
    """Read and validate a panel (Parquet/CSV file or folder, or CAREER split files) without writing it.

    Without ``rejects`` the first problem raises ``InputDataError``; with it, bad rows go to the rejects file.
    """
    read, rej = _read(path, taxonomy, rejects, source)
    return _summary(path, read, rej)


def import_data(
    path: Path, out: Path, *, taxonomy: str | None = None, rejects: Path | None = None, source: str | None = None
) -> ValidationSummary:
    """Read any supported input, validate it, and write a canonical Parquet panel folder to ``out``."""
    read, rej = _read(path, taxonomy, rejects, source)
    files = write_panel(read.table, out, read.taxonomy)
    logger.info("wrote %d shard(s) to %s", len(files), out)
    return _summary(path, read, rej)


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
