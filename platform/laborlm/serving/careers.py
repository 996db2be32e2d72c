"""Career histories as JSON: validation, conversion to the canonical panel, and top-k next occupations.

This is the request format of every way to ask a saved model for predictions (``laborlm predict``, the MLflow
pyfunc model, ``mlflow models serve``). One career, as one JSON object:

.. code-block:: json

    {
      "person_id": "worker-17",
      "source": "psid",
      "covariates": {"gender": "female", "race": "black", "region": "midwest", "birth_year": 1975},
      "history": [
        {"year": 2001, "occupation": "229", "education": "bachelors"},
        {"year": 2003, "occupation": "229", "education": "bachelors"},
        {"year": 2005, "occupation": "unemployed"}
      ],
      "next_year": 2007,
      "education": "masters"
    }

- ``history`` (required, may be empty only when ``next_year`` is given): the observed years, strictly
  increasing; ``occupation`` is a code of the model's taxonomy (an integer is read as its decimal code) or a
  special state (``unemployed``, ``out_of_labor_force``, ``in_school``); ``education`` is optional: an entry
  without it keeps the previous entry's (education is the highest level so far).
- ``covariates`` (optional, each key optional): the person's static covariates, in the panel's spellings
  (``female``, ``black_or_african_american``, ``CA``, ...). They describe the year being predicted too.
- ``next_year`` (optional): the year to predict; default the last history year + 1. Biennial surveys
  (PSID after 1997) predict two years ahead: pass ``last + 2``.
- ``education`` (optional): the education level in ``next_year``; default the last known one. It is a
  predictor of the next occupation (the LABOR-LLM prompt writes it before the title to predict).
- ``source`` (optional, default ``psid``): the dataset tag the model was trained with (the LABOR-LLM template
  writes ``<A worker from the PSID dataset>``); ``psid``, ``nlsy79``, ``nlsy97``, ``resumes``.
- ``person_id`` (optional): echoed in the answer; default ``"<index>"``.

The answer per career is ``{"person_id", "next_year", "top_k": [{"code", "title", "probability"}, ...]}``,
most probable first, probabilities from the model's distribution over the whole taxonomy (so they sum to at
most one).

Conversion: a career becomes the panel rows of its history plus one *target* row for ``next_year``. Every
model's ``log_probs`` row r is the distribution of row r's occupation given the earlier rows and row r's
covariates, so the target row's distribution is the prediction. The target row needs some valid occupation
code to pass through the panel code; it holds the last observed one, which no model reads.

Validation collects every problem (career index, field path, value, reason) into one ``CareerInputError``;
the pyfunc model turns it into an HTTP 400, ``laborlm predict`` into ``file:line: field ...`` messages.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from laborlm import schema
from laborlm.errors import LaborLMError
from laborlm.occupations.taxonomy import Taxonomy

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "psid"
DEFAULT_TOP_K = 5
MAX_REPORTED_PROBLEMS = 10  # the error message lists this many; the exception keeps them all
_CAREER_KEYS = frozenset({"person_id", "source", "covariates", "history", "next_year", "education"})
_COVARIATE_KEYS = frozenset({"gender", "race", "region", "birth_year"})
_ENTRY_KEYS = frozenset({"year", "occupation", "education"})

# The same contract as a JSON Schema (draft 2020-12): recorded in the MLflow model's metadata, so the
# registry documents its own request format. Validation itself is ``parse_careers`` (taxonomy-aware, and
# its messages name the career and field).
CAREER_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "LaborLM career",
    "type": "object",
    "required": ["history"],
    "additionalProperties": False,
    "properties": {
        "person_id": {"type": "string"},
        "source": {"type": "string", "pattern": schema.SOURCE_PATTERN.pattern, "default": DEFAULT_SOURCE},
        "covariates": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "gender": {"type": ["string", "null"]},
                "race": {"type": ["string", "null"]},
                "region": {"type": ["string", "null"]},
                "birth_year": {"type": ["integer", "null"]},
            },
        },
        "history": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["year", "occupation"],
                "additionalProperties": False,
                "properties": {
                    "year": {
                        "type": "integer",
                        "minimum": schema.YEAR_RANGE[0],
                        "maximum": schema.YEAR_RANGE[1],
                    },
                    "occupation": {"type": ["string", "integer"]},
                    "education": {"type": ["string", "null"]},
                },
            },
        },
        "next_year": {"type": ["integer", "null"], "description": "default: last history year + 1"},
        "education": {
            "type": ["string", "null"],
            "description": "education in next_year; default: last known",
        },
    },
}


@dataclass(frozen=True)
class Problem:
    index: int  # 0-based position of the career in the request (line - 1 of a JSONL file)
    field: str  # path inside the career: history[2].occupation, covariates.gender, next_year
    reason: str
    value: Any = None

    def line(self) -> str:
        value = "" if self.value is None else f"{self.value!r} "
        return f"career {self.index}: field '{self.field}': {value}{self.reason}"


class CareerInputError(LaborLMError):
    """One or more invalid careers in a prediction request; each problem names the career and field.

    With ``path`` (and ``lines``, the 1-based line of each career in that file), problems read
    ``careers.jsonl:3: field 'history[0].occupation': '9999' is not in ...``, as ``InputDataError``'s do.
    """

    def __init__(
        self, problems: Sequence[Problem], path: str | None = None, lines: Sequence[int] | None = None
    ) -> None:
        super().__init__(list(problems), path, None if lines is None else list(lines))
        self.problems = list(problems)
        self.path = path
        self.lines = None if lines is None else list(lines)

    def located(self, path: str, lines: Sequence[int]) -> CareerInputError:
        """The same problems, reported against the file the careers came from."""
        return CareerInputError(self.problems, path, lines)

    def _line(self, p: Problem) -> str:
        if self.path is None:
            return p.line()
        row = self.lines[p.index] if self.lines and p.index < len(self.lines) else p.index + 1
        value = "" if p.value is None else f"{p.value!r} "
        return f"{self.path}:{row}: field '{p.field}': {value}{p.reason}"

    def __str__(self) -> str:
        shown = [self._line(p) for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        more = len(self.problems) - len(shown)
        if more:
            shown.append(f"... and {more} more problem{'s' if more != 1 else ''}")
        if len(self.problems) == 1:
            return shown[0] if self.path else f"invalid career: {shown[0]}"
        head = f"{len(self.problems)} problems in the careers:"
        # One line for an HTTP answer; a list for a file, the way ConfigError reports several problems.
        return f"{head}\n  - " + "\n  - ".join(shown) if self.path else f"{head} " + "; ".join(shown)


@dataclass(frozen=True)
class CareerRequest:
    """One validated career: canonical values, ready to become panel rows."""

    person_id: str
    source: str
    years: tuple[int, ...]
    occupations: tuple[str, ...]
    education: tuple[str | None, ...]
    gender: str | None
    race: str | None
    region: str | None
    birth_year: int | None
    next_year: int
    next_education: str | None


def _missing(value: Any) -> bool:
    """None, or the NaN / NA that pandas puts where a record lacks a key the others have."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _as_int(value: Any) -> int | None:
    """An integer from JSON (or an integral float, which pandas makes of integers beside a gap), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


def _plain(value: Any) -> Any:
    """numpy arrays / scalars (what a DataFrame cell may hold) as the JSON types they came from."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Parser:
    """Validates one career at a time, appending problems instead of stopping at the first."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.problems: list[Problem] = []

    def fail(self, i: int, field: str, reason: str, value: Any = None) -> None:
        self.problems.append(Problem(i, field, reason, value))

    def year(self, i: int, field: str, value: Any) -> int | None:
        if isinstance(value, (float, np.floating)) and not math.isfinite(
            value
        ):  # NaN, Infinity: not "missing"
            self.fail(i, field, "is not a finite number (an integer year is required)", value)
            return None
        year = _as_int(value)
        if year is None:
            self.fail(i, field, f"must be an integer year, got {type(value).__name__}", value)
            return None
        lo, hi = schema.YEAR_RANGE
        if not lo <= year <= hi:
            self.fail(i, field, f"must be between {lo} and {hi}", year)
            return None
        return year

    def category(self, i: int, field: str, value: Any, column: str) -> str | None:
        if _missing(value):
            return None
        normalize, allowed = schema.CATEGORICAL_NORMALIZERS[column]
        if not isinstance(value, str):
            self.fail(i, field, f"must be a string, got {type(value).__name__}", value)
            return None
        canonical = normalize(value)
        if canonical is None:
            shown = ", ".join(allowed if len(allowed) <= 10 else allowed[:8] + ("...",))
            self.fail(i, field, f"is not a known {column} ({shown})", value)
        return canonical

    def occupation(self, i: int, field: str, value: Any) -> str | None:
        if _missing(value):
            self.fail(i, field, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
            self.fail(i, field, f"must be an occupation code (string), got {type(value).__name__}", value)
            return None
        code = self.taxonomy.normalize(str(value))
        if code is None:
            self.fail(
                i,
                field,
                f"is not in the occupation taxonomy '{self.taxonomy.name}' "
                f"({len(self.taxonomy)} codes, special states included)",
                value,
            )
        return code

    def career(self, i: int, raw: Any) -> CareerRequest | None:
        before = len(self.problems)
        if not isinstance(raw, Mapping):
            self.fail(i, "(career)", f"must be a JSON object, got {type(raw).__name__}")
            return None
        raw = {k: _plain(v) for k, v in raw.items() if not _missing(v)}
        for key in sorted(set(raw) - _CAREER_KEYS):
            self.fail(i, key, f"is not a career field (known: {', '.join(sorted(_CAREER_KEYS))})")

        person_id = raw.get("person_id", str(i))
        if not isinstance(person_id, (str, int)) or isinstance(person_id, bool) or person_id == "":
            self.fail(i, "person_id", "must be a non-empty string", person_id)
        source = raw.get("source", DEFAULT_SOURCE)
        if not isinstance(source, str) or not schema.SOURCE_PATTERN.match(source):
            self.fail(i, "source", "must match [a-z0-9_]+ (psid, nlsy79, nlsy97, resumes, ...)", source)

        covariates = raw.get("covariates", {})
        gender = race = region = None
        birth_year: int | None = None
        if not isinstance(covariates, Mapping):
            self.fail(i, "covariates", f"must be a JSON object, got {type(covariates).__name__}")
        else:
            covariates = {k: _plain(v) for k, v in covariates.items()}
            for key in sorted(set(covariates) - _COVARIATE_KEYS):
                self.fail(
                    i,
                    f"covariates.{key}",
                    f"is not a covariate (known: {', '.join(sorted(_COVARIATE_KEYS))})",
                )
            gender = self.category(i, "covariates.gender", covariates.get("gender"), schema.GENDER)
            race = self.category(i, "covariates.race", covariates.get("race"), schema.RACE)
            region = self.category(i, "covariates.region", covariates.get("region"), schema.REGION)
            if not _missing(covariates.get("birth_year")):
                birth_year = self.year(i, "covariates.birth_year", covariates["birth_year"])

        years: list[int] = []
        occupations: list[str] = []
        education: list[str | None] = []
        history = raw.get("history")
        if history is None:
            self.fail(i, "history", "is required (a list of {year, occupation, education?})")
            history = []
        elif not isinstance(history, list):
            self.fail(
                i,
                "history",
                f"must be a list of {{year, occupation, education?}}, got {type(history).__name__}",
            )
            history = []
        for t, entry in enumerate(history):
            where = f"history[{t}]"
            if not isinstance(entry, Mapping):
                self.fail(i, where, f"must be a JSON object, got {type(entry).__name__}")
                continue
            entry = {k: _plain(v) for k, v in entry.items()}
            for key in sorted(set(entry) - _ENTRY_KEYS):
                self.fail(i, f"{where}.{key}", "is not a history field (known: education, occupation, year)")
            year = None
            if "year" not in entry:
                self.fail(i, f"{where}.year", "is required")
            elif entry["year"] is None or entry["year"] is pd.NA:
                self.fail(i, f"{where}.year", "is null: an integer year is required")
            else:
                year = self.year(i, f"{where}.year", entry["year"])
            if year is not None and years and year <= years[-1]:
                self.fail(i, f"{where}.year", f"must be after the previous entry's year {years[-1]}", year)
            occ = self.occupation(i, f"{where}.occupation", entry.get("occupation"))
            edu = self.category(i, f"{where}.education", entry.get("education"), schema.EDUCATION)
            if edu is None and education:
                edu = education[-1]  # carried forward: education is the highest level so far
            if year is not None and occ is not None:
                years.append(year)
                occupations.append(occ)
                education.append(edu)

        next_year: int | None = None
        if "next_year" in raw:
            next_year = self.year(i, "next_year", raw["next_year"])
            if next_year is not None and years and next_year <= years[-1]:
                self.fail(i, "next_year", f"must be after the last history year {years[-1]}", next_year)
        elif years:
            next_year = years[-1] + 1
        elif len(self.problems) == before:
            self.fail(i, "history", "is empty: give at least one year, or next_year to predict a first job")
        known = [e for e in education if e is not None]
        next_education = (
            self.category(i, "education", raw["education"], schema.EDUCATION)
            if "education" in raw
            else (known[-1] if known else None)
        )

        if len(self.problems) > before or next_year is None:
            return None
        return CareerRequest(
            person_id=str(person_id),
            source=source,
            years=tuple(years),
            occupations=tuple(occupations),
            education=tuple(education),
            gender=gender,
            race=race,
            region=region,
            birth_year=birth_year,
            next_year=next_year,
            next_education=next_education,
        )


def parse_careers(careers: Iterable[Any], taxonomy: Taxonomy) -> list[CareerRequest]:
    """Validate careers (JSON objects: dicts, or DataFrame records) against the model's taxonomy.

    Raises:
        CareerInputError: every problem found, each with the career's 0-based index and the field path.
    """
    parser = _Parser(taxonomy)
    parsed = [parser.career(i, raw) for i, raw in enumerate(careers)]
    if parser.problems:
        raise CareerInputError(parser.problems)
    if not parsed:
        raise CareerInputError([Problem(0, "(request)", "no careers given")])
    return [p for p in parsed if p is not None]


def careers_to_panel(careers: Sequence[CareerRequest], taxonomy: Taxonomy) -> tuple[pa.Table, np.ndarray]:
    """The canonical panel of the careers plus one target row each, and the target rows' indices.

    Persons get internal ids ``00000000``, ``00000001``, ... so the panel's (person_id, year) order is the
    request order and duplicate or missing user ids cannot merge two careers.
    """
    cols: dict[str, list[Any]] = {
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
        )
    }
    targets = np.empty(len(careers), dtype=np.int64)
    placeholder = taxonomy.codes[0]
    for i, c in enumerate(careers):
        years = (*c.years, c.next_year)
        # The target row's occupation is never read by a model (it is the label); any valid code will do.
        occupations = (*c.occupations, c.occupations[-1] if c.occupations else placeholder)
        education = (*c.education, c.next_education)
        for year, occ, edu in zip(years, occupations, education, strict=True):
            cols["person_id"].append(f"{i:08d}")
            cols["year"].append(year)
            cols["occupation"].append(occ)
            cols["education"].append(edu)
            cols["region"].append(c.region)
            cols["gender"].append(c.gender)
            cols["race"].append(c.race)
            cols["birth_year"].append(c.birth_year)
            cols["source"].append(c.source)
        targets[i] = len(cols["year"]) - 1
    table = pa.table({k: pa.array(v, schema.PANEL_SCHEMA.field(k).type) for k, v in cols.items()})
    return schema.conform(table), targets


def top_k(log_probs: np.ndarray, taxonomy: Taxonomy, k: int) -> list[list[dict[str, Any]]]:
    """Per row of ``log_probs`` (``[n, K]`` natural log), the ``k`` most probable codes, most probable first.

    Ties break by taxonomy index, so the answer is deterministic.
    """
    k = min(k, log_probs.shape[1])
    # argsort of -logp with a stable sort: descending probability, ascending index among equals.
    order = np.argsort(-log_probs, axis=1, kind="stable")[:, :k]
    out: list[list[dict[str, Any]]] = []
    for row, idx in zip(log_probs, order, strict=True):
        out.append(
            [
                {
                    "code": taxonomy.codes[j],
                    "title": taxonomy.occupations[j].title,
                    "probability": float(np.exp(row[j])),
                }
                for j in idx
            ]
        )
    return out


def check_top_k(value: Any, taxonomy: Taxonomy) -> int:
    """``top_k`` from a request, validated: 1..K."""
    k = _as_int(value)
    if k is None or not 1 <= k <= len(taxonomy):
        raise CareerInputError(
            [Problem(0, "params.top_k", f"must be an integer from 1 to {len(taxonomy)}", value)]
        )
    return k


def predict_careers(model: Any, careers: Iterable[Any], k: int = DEFAULT_TOP_K) -> list[dict[str, Any]]:
    """Top-k next occupations of each career from any ``NextOccupationModel``.

    Raises:
        CareerInputError: invalid careers or ``k`` (nothing is scored then).
        LaborLMError: the model gave NaN probabilities (nothing is returned then).
    """
    taxonomy: Taxonomy = model.taxonomy
    k = check_top_k(k, taxonomy)
    parsed = parse_careers(careers, taxonomy)
    panel, targets = careers_to_panel(parsed, taxonomy)
    logger.debug("scoring %d careers (%d person-years) with %s", len(parsed), panel.num_rows, model.name)
    log_probs = np.asarray(model.log_probs(panel))[targets]  # [n_careers, K]
    bad = np.flatnonzero(np.isnan(log_probs).any(axis=1))
    if len(bad):
        # A defect of the model, never an answer: NaN is not a probability (nor valid JSON).
        raise LaborLMError(
            f"{model.name} gave NaN probabilities for career(s) {', '.join(map(str, bad[:10]))}; "
            "nothing was predicted"
        )
    return [
        {"person_id": c.person_id, "next_year": c.next_year, "top_k": best}
        for c, best in zip(parsed, top_k(log_probs, taxonomy, k), strict=True)
    ]


def read_careers(path: str) -> tuple[list[Any], list[int]]:
    """Careers of a JSONL file (``-``: stdin), one JSON object a line; blank lines are skipped.

    Returns:
        The careers and the 1-based line of each, so problems can be reported as ``file:line``.

    Raises:
        InputDataError: unreadable file, or a line that is not JSON.
    """
    from laborlm.errors import InputDataError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputDataError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    careers: list[Any] = []
    lines: list[int] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            careers.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputDataError(path, n, None, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
        lines.append(n)
    if not careers:
        raise InputDataError(path, None, None, "no careers (expected one JSON object a line)")
    return careers, lines
