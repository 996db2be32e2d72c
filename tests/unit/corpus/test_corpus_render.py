"""Spans, prompts and targets line up with the text; the column-wise renderer agrees with the per-career one."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from laborlm import schema
from laborlm.corpus.render import CORPUS_SCHEMA, RenderedCareer, render_table, render_with_spans
from laborlm.corpus.template import available_templates, load_template
from laborlm.errors import SchemaError
from laborlm.occupations.taxonomy import Occupation, Taxonomy
from laborlm.readers import read_panel
from laborlm.schema import Career, iter_careers

# The module, not the package's re-exported function of the same name.
render_module = importlib.import_module("laborlm.corpus.render")
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "corpus_panel.csv"


def random_panel(n_people: int, seed: int, taxonomy: Taxonomy) -> pa.Table:
    """A sorted canonical panel with every kind of missing covariate and gaps between years."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[object]] = {
        c: []
        for c in (
            "person_id",
            "year",
            "occupation",
            "education",
            "region",
            "gender",
            "race",
            "birth_year",
            "source",
            "split",
        )
    }
    for p in range(n_people):
        t = int(rng.integers(1, 9))
        first = int(rng.integers(1970, 2010))
        years = first + np.cumsum(rng.integers(1, 3, size=t)) - 1
        statics = {
            "region": rng.choice([None, "south", "CA", "northeast"]),
            "gender": rng.choice([None, "female", "male"]),
            "race": rng.choice([None, *schema.RACES]),
            "birth_year": None if rng.random() < 0.3 else int(first - rng.integers(16, 30)),
            "source": rng.choice(["psid", "resumes", "my_survey"]),
            "split": rng.choice([None, "train", "test"]),
        }
        for y in years:
            rows["person_id"].append(f"p{p:05d}")
            rows["year"].append(int(y))
            rows["occupation"].append(taxonomy.codes[int(rng.integers(len(taxonomy)))])
            rows["education"].append(rng.choice([None, *schema.EDUCATION_LEVELS]))
            for k, v in statics.items():
                rows[k].append(v)
    return pa.table({k: pa.array(v, schema.PANEL_SCHEMA.field(k).type) for k, v in rows.items()})


def check_alignment(rendered: RenderedCareer, career: Career, labels: dict[str, str]) -> None:
    assert rendered.targets == career.occupations
    assert rendered.years == tuple(int(y) for y in career.years)
    lines = rendered.text.split("\n")
    assert lines[-1] == "<END OF DATA>"
    for t, (start, end) in enumerate(rendered.spans):
        label = labels[career.occupations[t]]
        assert rendered.text[start:end] == label
        assert rendered.prompt(t) == rendered.text[: start - 1]
        assert rendered.prompt(t).endswith(":")
        assert rendered.prompt(t).rsplit("\n", 1)[-1].startswith(str(career.years[t]))
        assert rendered.continuation(t) == " " + label + "\n"
        # The prompt holds every earlier line and nothing of this year's label.
        assert rendered.prompt(t).count("\n") == len(lines) - 1 - (len(career) - t)


@pytest.mark.parametrize("name", available_templates())
def test_fixture_spans_and_prompts(name: str) -> None:
    read = read_panel(FIXTURE)
    template = load_template(name)
    labels = dict(zip(read.taxonomy.codes, template.occupation_labels(read.taxonomy)))
    for career in iter_careers(read.table):
        check_alignment(render_with_spans(career, read.taxonomy, template), career, labels)


def test_first_prompt_is_the_header() -> None:
    career = next(iter_careers(read_panel(FIXTURE).table))
    rendered = render_with_spans(career, Taxonomy.default(), load_template("labor-llm"))
    assert rendered.prompt(0).endswith("and the job title:\n1982 (high school graduate):")
    assert rendered.prompts[1] == rendered.prompt(0) + " Cashiers\n1983 (high school graduate):"


@pytest.mark.parametrize("name", available_templates())
def test_table_renderer_matches_per_career(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    taxonomy = Taxonomy.default()
    template = load_template(name)
    panel = random_panel(150, seed=7, taxonomy=taxonomy)
    monkeypatch.setattr(render_module, "_ROWS_PER_PASS", 37)  # many passes, cut on person boundaries
    table = render_table(panel, taxonomy, template)
    assert table.schema == CORPUS_SCHEMA
    careers = list(iter_careers(panel))
    assert table.column("person_id").to_pylist() == [c.person_id for c in careers]
    labels = dict(zip(taxonomy.codes, template.occupation_labels(taxonomy)))
    for row, career in zip(table.to_pylist(), careers):
        one = render_with_spans(career, taxonomy, template)
        assert row["text"] == one.text
        assert row["n_chars"] == len(one.text) and row["n_years"] == len(career)
        assert [(s["start"], s["end"]) for s in row["spans"]] == list(one.spans)
        assert row["split"] == career.split and row["source"] == career.source
        check_alignment(one, career, labels)


def test_states_render_as_their_region() -> None:
    taxonomy = Taxonomy.default()
    career = Career("x", "psid", np.array([2000]), ("276",), (None,), np.array([np.nan]), region="CA")
    assert (
        "residing in the west region." in render_with_spans(career, taxonomy, load_template("labor-llm")).text
    )


def test_spans_count_code_points_not_bytes() -> None:
    taxonomy = Taxonomy(
        [Occupation("1", "Café owner", "all"), Occupation("2", "Señor engineer ☃", "all")], name="u"
    )
    career = Career("x", "résumés", np.array([2000, 2001]), ("1", "2"), (None, None), np.full(2, np.nan))
    rendered = render_with_spans(career, taxonomy, load_template("bare"))
    assert [rendered.text[s:e] for s, e in rendered.spans] == ["Café owner", "Señor engineer ☃"]


def test_unknown_occupation_is_a_schema_error() -> None:
    career = Career("x", "psid", np.array([2000]), ("not-a-code",), (None,), np.array([np.nan]))
    with pytest.raises(SchemaError, match="not-a-code"):
        render_with_spans(career, Taxonomy.default(), load_template("labor-llm"))


def test_empty_panel() -> None:
    out = render_table(schema.empty_panel(), Taxonomy.default(), load_template("labor-llm"))
    assert out.num_rows == 0 and out.schema == CORPUS_SCHEMA
