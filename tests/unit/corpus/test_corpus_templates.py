"""The three built-in templates, pinned on the fixture panel, and the spec's validation rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from laborlm.corpus.render import render
from laborlm.corpus.template import Template, available_templates, load_template
from laborlm.errors import ConfigError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import read_panel
from laborlm.schema import Career, iter_careers

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "corpus_panel.csv"

LABOR_LLM = {
    "a1": (
        "<A worker from the NLSY79 dataset>\n"
        "The following information is available about the work history of a female hispanic worker residing in the south region.\n"
        "The worker was born in 1963.\n"
        "The worker has the following records of work experience, one entry per line, including year, education level, and the job title:\n"
        "1982 (high school graduate): Cashiers\n"
        "1983 (high school graduate): Cashiers\n"
        "1984: Unemployed\n"
        "1985 (some college): Receptionists and other information clerks\n"
        "1986 (some college): Secretaries and administrative assistants\n"
        "<END OF DATA>"
    ),
    "b2": (
        "<A worker from the PSID dataset>\n"
        "The following information is available about the work history of a male black worker residing in the midwest region.\n"
        "The worker has the following records of work experience, one entry per line, including year, education level, and the job title:\n"
        "2001 (bachelor's degree): Computer programmers\n"
        "2003 (bachelor's degree): Out of labor force\n"
        "2005 (master's degree): In school\n"
        "<END OF DATA>"
    ),
    "c3": (
        "<A worker from the resume dataset>\n"
        "The following information is available about the work history of a worker.\n"
        "The worker has the following records of work experience, one entry per line, including year, education level, and the job title:\n"
        "2010: Chief executives, public administrators, and legislators\n"
        "2011: Chief executives, public administrators, and legislators\n"
        "<END OF DATA>"
    ),
}

CODES = {
    "a1": (
        "<A worker from the NLSY79 dataset>\n"
        "The following information is available about the work history of a female hispanic worker residing in the south region.\n"
        "The worker was born in 1963.\n"
        "The worker has the following records of work experience, one entry per line, including year, education level, and the job title:\n"
        "1982 (high school graduate): 276\n"
        "1983 (high school graduate): 276\n"
        "1984: 991\n"
        "1985 (some college): 319\n"
        "1986 (some college): 313\n"
        "<END OF DATA>"
    ),
    "b2": (
        "<A worker from the PSID dataset>\n"
        "The following information is available about the work history of a male black worker residing in the midwest region.\n"
        "The worker has the following records of work experience, one entry per line, including year, education level, and the job title:\n"
        "2001 (bachelor's degree): 229\n"
        "2003 (bachelor's degree): 992\n"
        "2005 (master's degree): 993\n"
        "<END OF DATA>"
    ),
    "c3": (
        "<A worker from the resume dataset>\n"
        "The following information is available about the work history of a worker.\n"
        "The worker has the following records of work experience, one entry per line, including year, education level, and the job title:\n"
        "2010: 4\n"
        "2011: 4\n"
        "<END OF DATA>"
    ),
}

BARE = {
    "a1": (
        "<A worker from the NLSY79 dataset>\n"
        "The worker has the following records of work experience, one entry per line, including year and the job title:\n"
        "1982: Cashiers\n"
        "1983: Cashiers\n"
        "1984: Unemployed\n"
        "1985: Receptionists and other information clerks\n"
        "1986: Secretaries and administrative assistants\n"
        "<END OF DATA>"
    ),
    "b2": (
        "<A worker from the PSID dataset>\n"
        "The worker has the following records of work experience, one entry per line, including year and the job title:\n"
        "2001: Computer programmers\n"
        "2003: Out of labor force\n"
        "2005: In school\n"
        "<END OF DATA>"
    ),
    "c3": (
        "<A worker from the resume dataset>\n"
        "The worker has the following records of work experience, one entry per line, including year and the job title:\n"
        "2010: Chief executives, public administrators, and legislators\n"
        "2011: Chief executives, public administrators, and legislators\n"
        "<END OF DATA>"
    ),
}


@pytest.fixture(scope="module")
def careers() -> dict[str, Career]:
    read = read_panel(FIXTURE)
    return {c.person_id: c for c in iter_careers(read.table)}


def test_builtins_are_listed() -> None:
    assert available_templates() == ("bare", "codes", "labor-llm")


@pytest.mark.parametrize(("name", "expected"), [("labor-llm", LABOR_LLM), ("codes", CODES), ("bare", BARE)])
def test_pinned_renderings(careers: dict[str, Career], name: str, expected: dict[str, str]) -> None:
    taxonomy = Taxonomy.default()
    template = load_template(name)
    assert {pid: render(c, taxonomy, template) for pid, c in careers.items()} == expected


def test_codes_template_leaves_no_occupation_wording(careers: dict[str, Career]) -> None:
    taxonomy = Taxonomy.default()
    labels = load_template("codes").occupation_labels(taxonomy)
    assert all(label.isdigit() for label in labels)
    assert labels[-3:] == ("991", "992", "993")  # unemployed, out of labor force, in school
    assert load_template("labor-llm").occupation_labels(taxonomy) == taxonomy.titles


def test_covariates_and_versions() -> None:
    assert load_template("labor-llm").covariates == (
        "source",
        "gender",
        "race",
        "region",
        "birth_year",
        "education",
    )
    assert load_template("bare").covariates == ("source",)
    assert all(load_template(n).version == 1 for n in available_templates())


def test_user_template_from_yaml(tmp_path: Path, careers: dict[str, Career]) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nversion: 2\nheader: ['Career of a {gender} worker']\n"
        "fields: {gender: {format: '{value}', missing: unknown-gender}}\n"
        "entry: '{year} ->{education} {occupation}'\nend: '--'\n"
    )
    template = load_template(path)
    assert template.fingerprint() != load_template("labor-llm").fingerprint()
    text = render(careers["c3"], Taxonomy.default(), template)
    assert text.splitlines()[:2] == [
        "Career of a unknown-gender worker",
        "2010 -> Chief executives, public administrators, and legislators",
    ]
    assert text.endswith("\n--")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "name: x\nversion: 1\nheader: []\nentry: '{year}: {occupation}'\ncolour: red\n",
            "colour: unknown key",
        ),
        (
            "name: x\nversion: 1\nheader: ['{salary}']\nentry: '{year}: {occupation}'\n",
            "unknown placeholder {salary}",
        ),
        (
            "name: x\nversion: 1\nheader: []\nentry: '{occupation} in {year}'\n",
            "must end with a single space",
        ),
        ("name: x\nversion: 1\nheader: []\nentry: '{year}:  {occupation}'\n", "must end with a single space"),
        (
            "name: x\nversion: 1\nheader: []\nentry: '{year}: {occupation}'\nfields: {gender: {format: 'no value'}}\n",
            "{value} exactly once",
        ),
        (
            (
                "name: x\nversion: 1\nheader: []\nentry: '{year}: {occupation}'\noccupation: code\n"
                "special_codes: {unemployed: '9', out_of_labor_force: '9', in_school: '8'}\n"
            ),
            "distinct",
        ),
    ],
)
def test_invalid_specs_are_config_errors(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match="bad.yaml") as info:
        load_template(path)
    assert message in str(info.value)


def test_unknown_template_name() -> None:
    with pytest.raises(ConfigError, match="built-in: bare, codes, labor-llm"):
        load_template("labor_llm")


def test_codes_that_collide_with_the_taxonomy_are_refused() -> None:
    template = Template(
        name="t",
        version=1,
        header=(),
        entry="{year}: {occupation}",
        occupation="code",
        special_codes={"unemployed": "4", "out_of_labor_force": "992", "in_school": "993"},
    )
    with pytest.raises(ConfigError, match="more than one occupation"):
        template.occupation_labels(Taxonomy.default())
