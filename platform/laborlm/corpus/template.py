"""Text templates as data: how a career becomes resume-like text, declared in YAML and selected by name.

A template is a small, versioned spec (labor_llm_spec.md §4, §11 "configurable template"), not a code branch,
so the paper's ablations (titles vs codes, with or without covariates) are files that differ by a few lines
and every corpus records exactly which spec produced it. Built-ins live in ``corpus/templates/*.yaml``
(``labor-llm``, ``codes``, ``bare``); a user passes a name or the path of their own YAML file.

The spec (all keys, with the ``labor-llm`` values as the example)::

    name: labor-llm            # [a-z0-9_-]+; recorded in the corpus manifest with the version
    version: 1                 # bump whenever the rendered text of any career changes
    description: ...
    occupation: title          # title: the taxonomy's English title; code: the code itself (the ablation)
    special_codes:             # occupation: code only; the three special states' codes (§4.3: no wording left)
      unemployed: "991"
      out_of_labor_force: "992"
      in_school: "993"
    fields:                    # how a covariate is written where a line says {name}
      gender: {format: "{value} "}                      # "female " ... ; a missing value writes `missing` ("")
      region: {format: " residing in the {value} region"}
      education: {format: " ({value})", values: {high_school: high school graduate}}
    header:                    # one line each; a line that renders empty is left out (e.g. no birth year)
      - "<A worker from the {source} dataset>"
      - "The following information is available about the work history of a {gender}{race}worker{region}."
      - "{birth_year}"
    entry: "{year}{education}: {occupation}"   # one line per observed year; must end with " {occupation}"
    end: "<END OF DATA>"

Header lines may use the person's static covariates ``source``, ``gender``, ``race``, ``region``,
``birth_year``; the entry line may use ``year``, ``education`` and must end with ``" {occupation}"``. A
categorical value is spelled by the field's ``values`` map, else as its canonical value with ``_`` read as
a space (``some_college`` -> ``some college``). A region given as a state code is written as its census
region, because the sentence speaks of regions. A field with no entry under ``fields`` writes the bare
value, and nothing when missing.

The single space before the occupation is the boundary of LABOR-LLM's prediction prompt (§4.4, §5.2): the
prompt of year t ends right before that space, and the scored continuation is ``" " + label + "\n"``.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml

from laborlm import config as config_io
from laborlm.errors import ConfigError
from laborlm.occupations.taxonomy import SPECIAL_STATES, Taxonomy

HEADER_FIELDS: tuple[str, ...] = ("source", "gender", "race", "region", "birth_year")
ENTRY_FIELDS: tuple[str, ...] = ("year", "education", "occupation")
OCCUPATION_FIELD = "occupation"
FORMATTED_FIELDS: tuple[str, ...] = (
    "source",
    "gender",
    "race",
    "region",
    "birth_year",
    "education",
)  # may have fields.*
OCCUPATION_SEPARATOR = " "  # between the prompt of year t and its occupation label (labor_llm_spec.md §5.2)
LINE_END = "\n"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TEMPLATE_DIR = "templates"  # package data of laborlm.corpus


@dataclass(frozen=True)
class FieldFormat:
    """How one covariate is written inside a line."""

    format: str = "{value}"  # must contain {value} exactly once
    missing: str = ""  # written instead when the value is missing; "" drops the whole phrase
    values: dict[str, str] = field(default_factory=dict)  # canonical value -> spelling

    def spell(self, value: object) -> str:
        """The text this field contributes for one value (None = missing)."""
        if value is None:
            return self.missing
        text = str(value)
        return self.format.replace("{value}", self.values.get(text, text.replace("_", " ")))


@dataclass(frozen=True)
class Template:
    """A named, versioned text template; see the module docstring for the YAML form."""

    name: str
    version: int
    header: tuple[str, ...]
    entry: str
    end: str = "<END OF DATA>"
    occupation: Literal["title", "code"] = "title"
    special_codes: dict[str, str] = field(
        default_factory=lambda: {"unemployed": "991", "out_of_labor_force": "992", "in_school": "993"}
    )
    fields: dict[str, FieldFormat] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _NAME.match(self.name):
            problems.append(f"name: expected [a-z0-9_-]+, got {self.name!r}")
        if self.version < 1:
            problems.append(f"version: must be >= 1, got {self.version}")
        for i, line in enumerate(self.header):
            problems.extend(_check_line(f"header[{i}]", line, HEADER_FIELDS))
        problems.extend(_check_line("entry", self.entry, ENTRY_FIELDS))
        tail = OCCUPATION_SEPARATOR + "{" + OCCUPATION_FIELD + "}"
        if (
            not self.entry.endswith(tail)
            or _placeholders(self.entry).count(OCCUPATION_FIELD) != 1
            or (self.entry[: -len(tail)].endswith(" "))
        ):
            problems.append(
                f"entry: must end with a single space and {{{OCCUPATION_FIELD}}} (and use it once), got {self.entry!r};"
                " the prediction prompt ends right before that space"
            )
        if not self.end or LINE_END in self.end:
            problems.append("end: must be a non-empty single line")
        for key, spec in self.fields.items():
            if key not in FORMATTED_FIELDS:
                problems.append(
                    f"fields.{key}: not a covariate a template can format (known: {', '.join(FORMATTED_FIELDS)})"
                )
            elif spec.format.count("{value}") != 1 or LINE_END in spec.format + spec.missing:
                problems.append(f"fields.{key}.format: must contain {{value}} exactly once and no newline")
        if self.occupation == "code":
            specials = {code for code, _ in SPECIAL_STATES}
            if set(self.special_codes) != specials:
                problems.append(f"special_codes: needs exactly {', '.join(sorted(specials))}")
            elif len(set(self.special_codes.values())) != len(specials) or not all(
                self.special_codes.values()
            ):
                problems.append("special_codes: codes must be non-empty and distinct")
        if problems:
            raise ConfigError(problems, source=f"template {self.name!r}")

    @property
    def covariates(self) -> tuple[str, ...]:
        """The covariates this template writes, in first-use order (what the ablations switch on and off)."""
        used = [p for line in self.header for p in _placeholders(line)] + _placeholders(self.entry)
        return tuple(dict.fromkeys(p for p in used if p in FORMATTED_FIELDS))

    def field_format(self, name: str) -> FieldFormat:
        return self.fields.get(name, FieldFormat())

    def occupation_labels(self, taxonomy: Taxonomy) -> tuple[str, ...]:
        """The label written for every taxonomy index (``[K]``): titles, or codes with fixed special codes.

        Evaluation scores ``" " + label + "\\n"`` for each of these K labels (labor_llm_spec.md §5.2).

        Raises:
            ConfigError: two occupations would be written the same way (a special code that is also a regular
                code, or duplicate titles), which would make the scored strings ambiguous.
        """
        if self.occupation == "title":
            labels = taxonomy.titles
        else:
            labels = tuple(self.special_codes[o.code] if o.special else o.code for o in taxonomy.occupations)
        repeated = sorted({lab for lab in labels if labels.count(lab) > 1})
        if repeated:
            raise ConfigError(
                f"occupation labels {repeated[:5]} stand for more than one occupation of taxonomy '{taxonomy.name}'",
                source=f"template {self.name!r}",
            )
        return labels

    def fingerprint(self) -> str:
        """A short hash of the whole spec: a user's YAML edited without a version bump still changes it."""
        blob = json.dumps(config_io.to_dict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_yaml(self) -> str:
        """The spec as YAML (written next to a corpus, so the exact template travels with it)."""
        return config_io.dump_yaml(self)


def available_templates() -> tuple[str, ...]:
    """Names of the built-in templates (package data)."""
    root = resources.files("laborlm.corpus").joinpath(_TEMPLATE_DIR)
    return tuple(sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml")))


def load_template(name_or_path: str | Path) -> Template:
    """A built-in template by name, or a template YAML file by path.

    Raises:
        ConfigError: unknown name, unreadable file, unknown keys or an invalid spec (all problems at once).
    """
    text = str(name_or_path)
    if text in available_templates():
        source = f"template {text!r}"
        raw = (
            resources.files("laborlm.corpus")
            .joinpath(_TEMPLATE_DIR, f"{text}.yaml")
            .read_text(encoding="utf-8")
        )
        data = yaml.safe_load(raw)
    elif text.endswith((".yaml", ".yml")) or Path(text).is_file():
        source = text
        data = config_io.load_yaml(text)
    else:
        raise ConfigError(
            f"unknown template {text!r}; built-in: {', '.join(available_templates())}, or a path to a YAML file"
        )
    return config_io.build(Template, data, source=source)


def _placeholders(line: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(line) if name is not None]


def _check_line(where: str, line: str, allowed: tuple[str, ...]) -> list[str]:
    if LINE_END in line:
        return [f"{where}: a line must not contain a newline"]
    try:
        parsed = list(string.Formatter().parse(line))
    except ValueError as exc:
        return [f"{where}: {exc} in {line!r}"]
    problems = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed:
            problems.append(f"{where}: unknown placeholder {{{name}}}; allowed here: {', '.join(allowed)}")
        if spec or conversion:
            problems.append(f"{where}: placeholder {{{name}}} takes no format spec; use fields.{name}.format")
    return problems
