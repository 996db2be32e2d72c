from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from laborlm.errors import InputDataError
from laborlm.occupations import Taxonomy
from laborlm.occupations.build import build_rows, render_csv


def test_package_data_matches_the_reference_tables(shared_data: Path) -> None:
    shipped = Path(__import__("laborlm.occupations", fromlist=["x"]).__file__).parent / "occ1990dd.csv"
    assert shipped.read_text(encoding="utf-8") == render_csv(build_rows(shared_data))


def test_default_taxonomy_has_every_code_group_and_special_state() -> None:
    t = Taxonomy.default()
    assert len(t) == 341 + 1 + 3
    assert t.codes[-3:] == ("unemployed", "out_of_labor_force", "in_school")
    assert list(t.special_indices) == [342, 343, 344]
    assert t.title("4") == "Chief executives, public administrators, and legislators"
    assert t.group("889") == "operators_fabricators_laborers"
    assert t.group("473") == "farming_forestry_fishing"
    assert t.group("470") == "service" and t.group("408") == "service"
    assert t.group("905") == "military"
    assert t.title("in_school") == "In school"
    assert set(t.groups) == {
        "managerial_professional",
        "technical_sales_administrative",
        "service",
        "farming_forestry_fishing",
        "precision_production_craft_repair",
        "operators_fabricators_laborers",
        "military",
        "not_working",
    }
    w = t.employment_weights()
    assert w.sum() == pytest.approx(1.0, abs=1e-5) and (w[t.special_indices] == 0).all()


def test_normalisation_of_spellings() -> None:
    t = Taxonomy.default()
    assert t.normalize("004") == "4" and t.normalize(" 4.0 ") == "4"
    assert t.normalize("not_in_labor_force") == "out_of_labor_force"
    assert t.normalize("education") == "in_school"
    assert t.normalize("991") == "unemployed"
    assert t.normalize("9999") is None and "9999" not in t
    assert list(t.indices(["4", "unemployed", "nope"])) == [0, 342, -1]


def test_from_csv_other_scheme_and_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "onet.csv"
    p.write_text("code,title\n31-2021,Physical Therapist Assistants\n11-1011,Chief Executives\n")
    t = Taxonomy.from_csv(p)
    assert t.codes[:2] == ("31-2021", "11-1011") and len(t) == 5 and not t.numeric
    assert t.normalize("education") == "in_school"
    out = tmp_path / "again.csv"
    t.to_csv(out)
    assert Taxonomy.from_csv(out) == t


def test_occ1990dd_file_reloads_as_the_default(tmp_path: Path) -> None:
    Taxonomy.default().to_csv(tmp_path / "taxonomy.csv")
    again = Taxonomy.from_csv(tmp_path / "taxonomy.csv")
    assert again is Taxonomy.default()


@pytest.mark.parametrize(
    "text, line, field",
    [
        ("code\n1\n", 1, "title"),
        ("code,title\n1,A\n1,B\n", 3, "code"),
        ("code,title\n,A\n", 2, "code"),
        ("code,title\n1,\n", 2, "title"),
    ],
)
def test_bad_taxonomy_files_name_line_and_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    p = tmp_path / "tax.csv"
    p.write_text(text)
    with pytest.raises(InputDataError) as ei:
        Taxonomy.from_csv(p)
    assert (ei.value.row, ei.value.field) == (line, field)
    assert str(ei.value).startswith(f"{p}:{line}: field '{field}'")


def test_infer_orders_codes_naturally_and_keeps_special_states_special() -> None:
    t = Taxonomy.infer(["10", "9", "100", "unemployed", "not_in_labor_force", "9"])
    assert t.codes == ("9", "10", "100", "unemployed", "out_of_labor_force", "in_school")
    assert t.title("10") == "10"
    assert np.array_equal(t.special_mask, [False, False, False, True, True, True])
