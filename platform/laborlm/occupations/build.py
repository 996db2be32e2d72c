"""Builds the package's occ1990dd table from the public reference files (a developer tool, not run-time code).

    python -m laborlm.occupations.build ../shared/data platform/laborlm/occupations/occ1990dd.csv

Inputs (``shared/data/SOURCES.md`` describes them): ``occ1990dd_titles.csv`` (Deming 2017: code, title,
cleaned title) and ``occ1990dd_lswt2010_webb.csv`` (Webb 2020: the 2010 labour-supply weight per code, a real
occupation frequency distribution). The output adds the broad and detailed 1990 Census groups, which follow
from each code's range, and the military code 905 that the crosswalks use. A unit test rebuilds the table
from ``shared/data`` and checks that the shipped copy is identical.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

# (first code, last code, broad group, detailed group) of the 1990 Census occupation scheme. occ1990dd keeps
# those ranges; Deming's update adds a few codes at range edges: 408 (laundry workers) is other service, and 470-472 (personal-service supervisors, transport attendants, animal caretakers) sit
# between service (403-469) and farming (473-499) and are service occupations.
GROUP_RANGES: tuple[tuple[int, int, str, str], ...] = (
    (3, 37, "managerial_professional", "executive_administrative_managerial"),
    (43, 199, "managerial_professional", "professional_specialty"),
    (203, 235, "technical_sales_administrative", "technicians"),
    (243, 285, "technical_sales_administrative", "sales"),
    (303, 389, "technical_sales_administrative", "administrative_support"),
    (403, 407, "service", "private_household"),
    (413, 427, "service", "protective_service"),
    (408, 412, "service", "other_service"),
    (428, 472, "service", "other_service"),
    (473, 499, "farming_forestry_fishing", "farming_forestry_fishing"),
    (503, 699, "precision_production_craft_repair", "precision_production_craft_repair"),
    (703, 799, "operators_fabricators_laborers", "machine_operators_assemblers_inspectors"),
    (803, 859, "operators_fabricators_laborers", "transportation_material_moving"),
    (863, 889, "operators_fabricators_laborers", "handlers_cleaners_helpers_laborers"),
    (905, 905, "military", "military"),
)
MILITARY = ("905", "Military occupations")
COLUMNS = ("code", "title", "group", "subgroup", "employment_weight")


def group_of(code: int) -> tuple[str, str]:
    """Broad and detailed 1990 Census group of an occ1990dd code."""
    for lo, hi, broad, detail in GROUP_RANGES:
        if lo <= code <= hi:
            return broad, detail
    raise ValueError(f"occ1990dd code {code} is outside every 1990 Census group range")


def build_rows(shared_data: Path) -> list[dict[str, str]]:
    with open(shared_data / "occ1990dd_titles.csv", newline="", encoding="utf-8") as f:
        titles = {int(r["occ1990dd"]): r["title_clean"].strip() for r in csv.DictReader(f)}
    with open(shared_data / "occ1990dd_lswt2010_webb.csv", newline="", encoding="utf-8") as f:
        weights = {int(r["occ1990dd"]): float(r["lswt2010"] or 0.0) for r in csv.DictReader(f)}
    total = sum(weights.values())
    rows = []
    for code in sorted(titles):
        broad, detail = group_of(code)
        share = weights.get(code, 0.0) / total
        rows.append(
            {
                "code": str(code),
                "title": titles[code],
                "group": broad,
                "subgroup": detail,
                "employment_weight": f"{share:.8f}",
            }
        )
    broad, detail = group_of(int(MILITARY[0]))
    # Military has no civilian labour-supply weight; it stays in the vocabulary for data that code it.
    rows.append(
        {
            "code": MILITARY[0],
            "title": MILITARY[1],
            "group": broad,
            "subgroup": detail,
            "employment_weight": "0.00000000",
        }
    )
    return rows


def render_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m laborlm.occupations.build SHARED_DATA_DIR OUT_CSV")
    Path(sys.argv[2]).write_text(render_csv(build_rows(Path(sys.argv[1]))), encoding="utf-8")
