"""Slices of the public NLS Young Women panel (../shared/data), imported as a user would, for the own-data tests.

The file is read from ../shared/data by the tests only (the package never needs it). ``nls_slice`` copies the
rows of a run of consecutive women exactly as the file has them; ``import_nls`` runs README's `laborlm data
import` command with the survey's maps on it.
"""

from __future__ import annotations

import csv
from pathlib import Path

PANEL_FILE = "nlsyw_young_women_1968_1988_nlswork.csv"
REPO = Path(__file__).resolve().parents[1]
IMPORT_MAPS = [
    "--taxonomy",
    str(REPO / "jobs" / "data" / "nlsw_occupations.csv"),
    "--columns",
    "person_id=idcode,occupation=occ_code,birth_year=birth_yr,education=grade,wage=ln_wage",
    "--ignore-columns",
    "*",
    "--two-digit-years",
    "1900",
    "--map",
    "race:1=white,2=black,3=other",
    "--map",
    "education:0-11=less_than_high_school,12=high_school,13-15=some_college,16=bachelors,17-18=masters",
]


def nls_slice(shared_data: Path, out: Path, people: int, skip: int = 0) -> Path:
    """Every row of women ``skip + 1`` to ``skip + people`` in the file's order, written to ``out`` (a CSV)."""
    with (shared_data / PANEL_FILE).open(newline="") as src, out.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        seen: list[str] = []
        for row in reader:
            if not seen or seen[-1] != row["idcode"]:
                seen.append(row["idcode"])
            if skip < len(seen) <= skip + people:
                writer.writerow(row)
            elif len(seen) > skip + people:
                break
    return out


def import_nls(csv_file: Path, out: Path, source: str = "nlsw") -> list[str]:
    """The arguments of `laborlm data import` for a slice (README's walkthrough command)."""
    return [
        "-q",
        "data",
        "import",
        str(csv_file),
        "--out",
        str(out),
        "--rejects",
        str(out.with_suffix(".rejects.jsonl")),
        "--source",
        source,
        *IMPORT_MAPS,
    ]
