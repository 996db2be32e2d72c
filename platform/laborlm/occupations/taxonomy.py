"""The occupation vocabulary: code <-> title <-> group <-> index. Every model and metric indexes through it.

The default is occ1990dd (Autor & Dorn 2013 as revised by Deming 2017: 341 civilian codes) plus military
(905) and the three special states every survey has and resumes lack: ``unemployed``, ``out_of_labor_force``
and ``in_school``. Index order is fixed: occupations in code order, then the special states. So index
``K - 3 .. K - 1`` are always the special states and log-probability arrays of shape ``[n, K]`` line up
across every model.

Other coding schemes load from a ``code,title[,group]`` CSV (for example O*NET-SOC), or are inferred from the
codes seen in data, in which case the code stands in for its title until ``with_titles`` names them. Any
spelling of a special state (``Out of labor force``, CAREER's ``not_in_labor_force``, a survey's own label
given as ``states={"home": "out_of_labor_force"}``) is that state, in a CSV and in inferred codes alike: it
never becomes an ordinary occupation.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from laborlm.errors import InputDataError

UNEMPLOYED = "unemployed"
OUT_OF_LABOR_FORCE = "out_of_labor_force"
IN_SCHOOL = "in_school"
SPECIAL_GROUP = "not_working"
SPECIAL_STATES: tuple[tuple[str, str], ...] = (
    (UNEMPLOYED, "Unemployed"),
    (OUT_OF_LABOR_FORCE, "Out of labor force"),
    (IN_SCHOOL, "In school"),
)
# CAREER's survey tokens and the crosswalks' codes for the same states.
SPECIAL_ALIASES: dict[str, str] = {
    "not_in_labor_force": OUT_OF_LABOR_FORCE,
    "nilf": OUT_OF_LABOR_FORCE,
    "olf": OUT_OF_LABOR_FORCE,
    "out_of_labour_force": OUT_OF_LABOR_FORCE,
    "education": IN_SCHOOL,
    "student": IN_SCHOOL,
    "school": IN_SCHOOL,
    "unemployment": UNEMPLOYED,
    "not_in_the_labor_force": OUT_OF_LABOR_FORCE,
    "out_of_the_labor_force": OUT_OF_LABOR_FORCE,
    "not_in_labour_force": OUT_OF_LABOR_FORCE,
    "in_education": IN_SCHOOL,
    "enrolled_in_school": IN_SCHOOL,
}
# CAREER's own spelling, used when writing its split files.
CAREER_TOKENS: dict[str, str] = {
    UNEMPLOYED: "unemployed",
    OUT_OF_LABOR_FORCE: "not_in_labor_force",
    IN_SCHOOL: "education",
}
MANUAL_GROUP = "operators_fabricators_laborers"  # CAREER Table 7's "manual laborers" (codes 703-889)
_INT_CODE = re.compile(r"^\d+(\.0+)?$")
_SEPARATORS = re.compile(r"[\s\-_/]+")


def state_token(spelling: str) -> str:
    """How special-state spellings are compared: lower case, words joined by '_' ('Out-of labor force')."""
    return _SEPARATORS.sub("_", spelling.strip().lower()).strip("_")


def special_state(spelling: str, states: Mapping[str, str] | None = None) -> str | None:
    """The special state a spelling names (built-in spellings, or a survey's own labels in ``states``).

    Args:
        spelling: a code or label as written in data or a taxonomy file.
        states: survey label -> special state (or any built-in spelling of one), e.g. ``{"home":
            "out_of_labor_force"}``; labels are compared like built-in spellings (case, spaces, hyphens).

    Returns:
        ``unemployed``, ``out_of_labor_force``, ``in_school``, or None when the spelling is not a state.
    """
    token = state_token(spelling)
    if token in _STATE_CODES:
        return token
    if token in SPECIAL_ALIASES:
        return SPECIAL_ALIASES[token]
    for label, state in (states or {}).items():
        if state_token(label) == token:
            return special_state(state)
    return None


_STATE_CODES = frozenset(code for code, _ in SPECIAL_STATES)


@dataclass(frozen=True)
class Occupation:
    code: str
    title: str
    group: str
    subgroup: str = ""
    employment_weight: float = 0.0  # share of 2010 US employment (occ1990dd only; 0 when unknown)
    special: bool = False


class Taxonomy:
    """An ordered occupation vocabulary with titles and groups.

    Args:
        occupations: the regular occupations, in index order. Special states are appended automatically.
        name: a short name recorded in manifests and model artifacts (``occ1990dd``, ``inferred``, a file stem).
        aliases: extra spellings mapped to codes (for example a crosswalk's code for unemployment).
    """

    def __init__(
        self, occupations: Sequence[Occupation], name: str, aliases: dict[str, str] | None = None
    ) -> None:
        regular = [o for o in occupations if not o.special]
        specials = [Occupation(c, t, SPECIAL_GROUP, SPECIAL_GROUP, 0.0, True) for c, t in SPECIAL_STATES]
        self.occupations: tuple[Occupation, ...] = tuple(regular) + tuple(specials)
        self.name = name
        self.codes: tuple[str, ...] = tuple(o.code for o in self.occupations)
        if len(set(self.codes)) != len(self.codes):
            dup = sorted({c for c in self.codes if self.codes.count(c) > 1})
            raise ValueError(f"taxonomy '{name}' has duplicate codes: {dup[:5]}")
        self._index = {c: i for i, c in enumerate(self.codes)}
        self._aliases = {**SPECIAL_ALIASES, **(aliases or {})}
        self.numeric = all(_INT_CODE.match(o.code) for o in regular) and bool(regular)
        self.titles: tuple[str, ...] = tuple(o.title for o in self.occupations)
        self.groups: tuple[str, ...] = tuple(sorted({o.group for o in self.occupations}))
        self.group_index = np.array(
            [self.groups.index(o.group) for o in self.occupations], dtype=np.int64
        )  # [K]
        self.special_mask = np.array([o.special for o in self.occupations], dtype=bool)  # [K]

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def default(cls) -> Taxonomy:
        """occ1990dd with titles, groups and employment weights, plus the special states (package data)."""
        return _default_taxonomy()

    @classmethod
    def from_csv(cls, path: str | Path, states: Mapping[str, str] | None = None) -> Taxonomy:
        """Load any consistent coding scheme from a CSV with columns ``code,title`` and optionally ``group``.

        A row whose code spells a special state (``unemployed``, ``Out of labor force``, a label of
        ``states``) is that state, not an occupation: the three states are always there, at the last three
        indices, and the file's spelling becomes an alias of its state.

        Raises:
            InputDataError: missing columns, empty or duplicate codes, empty titles (file and line named).
        """
        path = Path(path)
        aliases: dict[str, str] = {}
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                fields = [h.strip() for h in (reader.fieldnames or [])]
                for required in ("code", "title"):
                    if required not in fields:
                        raise InputDataError(
                            str(path),
                            1,
                            required,
                            f"missing column; a taxonomy file needs code,title[,group], found {fields}",
                        )
                occs: list[Occupation] = []
                seen: dict[str, int] = {}
                for line_no, raw in enumerate(reader, start=2):
                    row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
                    code, title = row.get("code", ""), row.get("title", "")
                    if not code:
                        raise InputDataError(str(path), line_no, "code", "empty occupation code")
                    if code in seen:
                        raise InputDataError(
                            str(path), line_no, "code", f"duplicate code (first on line {seen[code]})", code
                        )
                    if not title:
                        raise InputDataError(str(path), line_no, "title", "empty title", code)
                    seen[code] = line_no
                    state = special_state(code, states)
                    if state is not None:
                        aliases[state_token(code)] = state
                        continue
                    occs.append(Occupation(code, title, row.get("group") or "all"))
        except UnicodeDecodeError as exc:
            raise InputDataError(str(path), None, None, f"not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise InputDataError(
                str(path), None, None, f"cannot read taxonomy file: {exc.strerror}"
            ) from None
        if not occs:
            raise InputDataError(str(path), None, "code", "taxonomy file lists no occupations")
        loaded = cls(occs, name=path.stem, aliases=aliases)
        # A file that is exactly occ1990dd (as every panel folder carries) is occ1990dd, weights and all.
        default = cls.default()
        return default if loaded.fingerprint() == default.fingerprint() else loaded

    @classmethod
    def infer(
        cls, codes: Iterable[str], name: str = "inferred", states: Mapping[str, str] | None = None
    ) -> Taxonomy:
        """A taxonomy of the distinct codes seen in data; each code stands in for its own title.

        Special-state spellings (``unemployed``, ``Not in labor force``, labels of ``states``) become the
        special states, not codes.
        """
        distinct = {c.strip() for c in codes if c is not None and c.strip()}
        state_of = {c: special_state(c, states) for c in distinct}
        regular = sorted((c for c, state in state_of.items() if state is None), key=_natural_key)
        aliases = {state_token(c): state for c, state in state_of.items() if state is not None}
        return cls([Occupation(c, c, "all") for c in regular], name=name, aliases=aliases)

    def with_titles(self, titles: Mapping[str, str], name: str | None = None) -> Taxonomy:
        """The same codes, groups and order with English titles for the codes in ``titles``.

        For a coded scheme (inferred, or a CSV whose titles are its codes): what a language model reads.

        Raises:
            KeyError: a code of ``titles`` that is not a regular occupation of this taxonomy.
        """
        unknown = [c for c in titles if c not in self._index or self.occupations[self._index[c]].special]
        if unknown:
            raise KeyError(f"codes not in taxonomy '{self.name}': {', '.join(unknown[:10])}")
        occs = [o if o.special else replace(o, title=titles.get(o.code, o.title)) for o in self.occupations]
        extra = {k: v for k, v in self._aliases.items() if k not in SPECIAL_ALIASES}
        return Taxonomy(occs, name=name or self.name, aliases=extra)

    @property
    def untitled(self) -> tuple[str, ...]:
        """Regular codes whose title is the code itself: a language model would see them bare."""
        return tuple(o.code for o in self.occupations if not o.special and o.title.strip() == o.code)

    # -- lookup -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.occupations)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and self.normalize(code) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and self.occupations == other.occupations

    def __hash__(self) -> int:
        return hash(self.occupations)

    def __repr__(self) -> str:
        return f"Taxonomy(name={self.name!r}, K={len(self)})"

    def normalize(self, code: str) -> str | None:
        """The canonical code for a spelling seen in data, or None if it is not in this taxonomy.

        Accepts surrounding whitespace, special-state aliases (CAREER's ``not_in_labor_force`` and
        ``education``), and, for numeric schemes, zero padding and a trailing ``.0`` (``"004"``, ``"4.0"``).
        """
        c = code.strip()
        if c in self._index:
            return c
        low = c.lower().replace(" ", "_")
        if low in self._index:
            return low
        token = state_token(c)  # special states and their aliases also match across case, '-' and '/'
        if token in self._index and self.occupations[self._index[token]].special:
            return token
        if token in self._aliases:
            return self._aliases[token]
        if c in self._aliases:
            return self._aliases[c]
        if self.numeric and _INT_CODE.match(c):
            n = str(int(float(c)))
            if n in self._index:
                return n
        return None

    def index(self, code: str) -> int:
        """Index of a code (after normalisation). Raises KeyError for an unknown code."""
        norm = self.normalize(code)
        if norm is None:
            raise KeyError(f"occupation code {code!r} is not in taxonomy '{self.name}'")
        return self._index[norm]

    def indices(self, codes: Sequence[str]) -> np.ndarray:
        """Vectorised ``index``: int64 array, -1 where a code is unknown. Codes are expected canonical."""
        get = self._index.get
        out = np.fromiter((get(c, -1) for c in codes), dtype=np.int64, count=len(codes))
        if (out < 0).any():
            for j in np.flatnonzero(out < 0).tolist():
                norm = self.normalize(codes[j]) if codes[j] is not None else None
                if norm is not None:
                    out[j] = self._index[norm]
        return out

    def code(self, index: int) -> str:
        return self.codes[index]

    def title(self, code: str) -> str:
        return self.occupations[self.index(code)].title

    def group(self, code: str) -> str:
        return self.occupations[self.index(code)].group

    def is_special(self, code: str) -> bool:
        return self.occupations[self.index(code)].special

    @property
    def special_indices(self) -> np.ndarray:
        return np.flatnonzero(self.special_mask)

    @property
    def regular_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.special_mask)

    def employment_weights(self) -> np.ndarray:
        """Employment share per index (``[K]``, zeros for the special states and unknown weights)."""
        return np.array([o.employment_weight for o in self.occupations], dtype=np.float64)

    def fingerprint(self) -> str:
        """A short stable hash of codes, titles and groups, recorded wherever a result depends on the taxonomy."""
        h = hashlib.sha256()
        for o in self.occupations:
            h.update(f"{o.code}\x1f{o.title}\x1f{o.group}\x1e".encode())
        return h.hexdigest()[:12]

    def to_csv(self, path: str | Path) -> None:
        """Write ``code,title,group`` (regular occupations; special states are implied) so ``from_csv`` reloads it."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["code", "title", "group"])
            for o in self.occupations:
                if not o.special:
                    w.writerow([o.code, o.title, o.group])


def _natural_key(code: str) -> tuple[int, float, str]:
    return (0, float(code), code) if _INT_CODE.match(code) else (1, 0.0, code)


@functools.lru_cache(maxsize=1)
def _default_taxonomy() -> Taxonomy:
    text = resources.files("laborlm.occupations").joinpath("occ1990dd.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    occs = [
        Occupation(r["code"], r["title"], r["group"], r["subgroup"], float(r["employment_weight"]))
        for r in rows
    ]
    # The crosswalks in shared/data code unemployment as 991 (see SOURCES.md).
    return Taxonomy(occs, name="occ1990dd", aliases={"991": UNEMPLOYED})
