"""Panel summary statistics in the shape of CAREER's Table 7, plus the yearly share of occupation changes.

    laborlm data stats runs/psid [--json]

Definitions (the denominators matter when comparing with the paper):
- people: distinct person_id; mean sequence length: observed person-years per person;
- special states available: whether any unemployed / out-of-labor-force / in-school row occurs;
- median year: median over person-years;
- % manual laborers: person-years in broad group operators/fabricators/laborers (occ1990dd 703-889, the
  reading SOURCES.md gives of Table 7) over all person-years; only defined for occ1990dd panels;
- % college graduates: people whose last known education is bachelors or higher, over people with any known
  education;
- demographics available: whether gender or race is present for anyone;
- occupation-change share for year t: among persons observed at t and at an earlier wave, the share whose
  occupation at t differs from the previous observation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm.occupations.taxonomy import MANUAL_GROUP, Taxonomy
from laborlm.schema import COLLEGE_LEVELS, EDUCATION, GENDER, RACE, SOURCE
from laborlm.sequences import CONSECUTIVE_REPEAT, FIRST, panel_arrays


@dataclass(frozen=True)
class PanelStats:
    people: int
    person_years: int
    mean_sequence_length: float
    special_states_available: bool
    median_year: float
    pct_manual_laborers: float | None
    pct_college_graduates: float | None
    demographics_available: bool
    occupation_change_share: float | None  # over all consecutive observation pairs
    sources: dict[str, int] = field(default_factory=dict)  # person-years per source
    change_share_by_year: dict[int, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["change_share_by_year"] = {str(k): v for k, v in self.change_share_by_year.items()}
        return d


def panel_stats(table: pa.Table, taxonomy: Taxonomy) -> PanelStats:
    """Compute ``PanelStats`` for a canonical panel sorted by person then year."""
    arr = panel_arrays(table, taxonomy)
    n = len(arr)
    people = arr.n_people
    special = bool(taxonomy.special_mask[arr.occ].any()) if n else False
    manual: float | None = None
    if MANUAL_GROUP in taxonomy.groups and n:
        gi = taxonomy.groups.index(MANUAL_GROUP)
        manual = float(np.mean(taxonomy.group_index[arr.occ] == gi))
    college = _college_share(table, arr.starts)
    demographics = any(table.column(c).null_count < table.num_rows for c in (GENDER, RACE)) if n else False
    moved = arr.transition != CONSECUTIVE_REPEAT
    pairs = arr.transition != FIRST
    by_year: dict[int, float] = {}
    if pairs.any():
        years = arr.year[pairs]
        changes = moved[pairs]
        uniq, inv = np.unique(years, return_inverse=True)
        counts = np.bincount(inv)
        sums = np.bincount(inv, weights=changes.astype(np.float64))
        by_year = {int(y): float(s / c) for y, s, c in zip(uniq, sums, counts)}
    sources = pc.value_counts(table.column(SOURCE)).to_pylist() if n else []
    return PanelStats(
        people=people,
        person_years=n,
        mean_sequence_length=float(n / people) if people else 0.0,
        special_states_available=special,
        median_year=float(np.median(arr.year)) if n else float("nan"),
        pct_manual_laborers=None if manual is None else 100.0 * manual,
        pct_college_graduates=None if college is None else 100.0 * college,
        demographics_available=demographics,
        occupation_change_share=float(moved[pairs].mean()) if pairs.any() else None,
        sources={s["values"]: int(s["counts"]) for s in sources},
        change_share_by_year=by_year,
    )


def _college_share(table: pa.Table, starts: np.ndarray) -> float | None:
    """Share of people whose last known education is bachelors or higher, among people with any known."""
    edu = table.column(EDUCATION).to_pylist()
    if not edu:
        return None
    ends = np.append(starts[1:], len(edu))
    known = college = 0
    for s, e in zip(starts, ends):
        last = next((x for x in reversed(edu[s:e]) if x is not None), None)
        if last is not None:
            known += 1
            college += last in COLLEGE_LEVELS
    return college / known if known else None


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}%" if pct else f"{value:,.1f}"


# CAREER's Table 7 (Appendix D), for side-by-side comparison with synthetic presets.
CAREER_TABLE7: dict[str, list[str]] = {
    "Resumes (CAREER)": ["23,731,674", "10.3", "No", "2007", "7%", "56%", "No", "-"],
    "NLSY79 (CAREER)": ["12,270", "19.5", "Yes", "1991", "17%", "23%", "Yes", "-"],
    "NLSY97 (CAREER)": ["8,770", "13.0", "Yes", "2007", "13%", "29%", "Yes", "-"],
    "PSID (CAREER)": ["12,338", "5.1", "Yes", "2011", "12%", "28%", "Yes", "-"],
}
ROW_NAMES = (
    "Number of individuals",
    "Average sequence length",
    "Unemployed/out-of-labor-force/student available",
    "Median year",
    "Percent manual laborers",
    "Percent college graduates",
    "Demographic covariates available",
    "Share of occupation changes",
)


def _column(stats: PanelStats) -> list[str]:
    yes = {True: "Yes", False: "No"}
    change = stats.occupation_change_share
    return [
        f"{stats.people:,}",
        _fmt(stats.mean_sequence_length),
        yes[stats.special_states_available],
        f"{stats.median_year:.0f}",
        _fmt(stats.pct_manual_laborers, pct=True),
        _fmt(stats.pct_college_graduates, pct=True),
        yes[stats.demographics_available],
        "n/a" if change is None else f"{100 * change:.1f}%",
    ]


def format_stats(
    panels: dict[str, PanelStats], reference: dict[str, list[str]] | None = None, by_year: bool = True
) -> str:
    """Markdown: one column per panel (and per ``reference`` column, e.g. ``CAREER_TABLE7``), one row per
    Table 7 statistic; then, for a single panel, its yearly occupation-change shares."""
    columns = {name: _column(st) for name, st in panels.items()} | dict(reference or {})
    out = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    out += [
        f"| {row} | " + " | ".join(col[i] for col in columns.values()) + " |"
        for i, row in enumerate(ROW_NAMES)
    ]
    if by_year and len(panels) == 1:
        (stats,) = panels.values()
        if stats.change_share_by_year:
            out += ["", "| year | occupation-change share |", "|---|---|"]
            out += [f"| {y} | {100 * v:.1f}% |" for y, v in sorted(stats.change_share_by_year.items())]
    return "\n".join(out)
