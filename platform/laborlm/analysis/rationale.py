"""Why did the model predict that job? Greedy rationales (CAREER Figure 3) and similar careers (Figure 5).

    laborlm analyze rationale [--config YAML] [rationale.examples=5 ...]

**Rationales.** The rationale of a prediction is a smallest set of earlier jobs that, on its own, leads the
model to the same prediction as the whole history (Vafa et al. 2021's greedy rationalisation, as CAREER
adapts it). Greedy: start from the empty history (only the target year's covariates); at each step add
the earlier job whose addition most increases the probability of the predicted job; stop as soon as the
predicted job is the model's top prediction again. CAREER's top prediction is almost always "stay in the
same job", so it rationalises moves: the prediction is the most likely job *other than the previous one*
(``move=True``, equivalent to CAREER's "second-largest prediction" when staying is on top). The jobs kept
are rows of the real career (with their own years and covariates) followed by the target row with its
covariates, so any model is asked through ``log_probs``: all candidate additions of a step are one panel,
scored in one call. A model never trained with jobs left out (CAREER fine-tunes with "job dropout" for
this) sees unusual gaps; the rationale is then still the smallest set the *model* finds sufficient.

**Similar careers.** For persons observed at least ``years + 1`` times, the model's representation at row
``years`` (``representations``: it summarises the first ``years`` jobs and the next year's covariates) is
compared by cosine similarity, after centring on the mean representation so that what all careers share
does not dominate; pairs with a state in common are skipped ("otherwise the model would find individuals
with the exact same career trajectories"), and each person appears in one pair at most.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from laborlm.analysis.panels import build_panel, career_rows, score_rows, variant_ids
from laborlm.analysis.representations import RepresentationKind, representation
from laborlm.errors import ConfigError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import PERSON_ID
from laborlm.sequences import panel_arrays

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RationaleConfig:
    examples: int = 3  # predictions to rationalise
    min_history: int = 3  # earlier observations a rationalised prediction needs at least
    move: bool = True  # rationalise the top job other than the previous one (CAREER's variant for moves)
    require_correct: bool = True  # pick moves the model predicts right (as Figure 3); else any move
    similar_years: int = 4  # careers compared on their first N jobs (CAREER: four years worked)
    similar_pairs: int = 5  # most similar pairs reported
    similar_max_people: int = 2000  # first N eligible persons by id (the similarity matrix is N x N)
    representation: RepresentationKind = (
        "auto"  # hidden state when the model has one, else predicted distribution
    )

    def __post_init__(self) -> None:
        problems = []
        for name in ("examples", "similar_years", "similar_pairs", "similar_max_people"):
            if getattr(self, name) < 1:
                problems.append(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.min_history < 1:
            problems.append(f"min_history: expected >= 1, got {self.min_history}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class Rationale:
    """The greedy rationale of one prediction."""

    person_id: str
    row: int  # panel row of the prediction
    history: tuple[int, ...]  # occupation index of every earlier row, in order
    history_years: tuple[int, ...]
    predicted: int  # the model's prediction with the whole history (taxonomy index)
    observed: int  # the job actually held
    chosen: tuple[int, ...]  # positions in ``history``, in the order the greedy search added them
    probs: tuple[float, ...]  # p(predicted) with the empty history, then after each addition
    full_prob: float  # p(predicted) with the whole history
    reproduced: bool  # the chosen jobs alone make ``predicted`` the model's top prediction


def _top(dist: np.ndarray, excluded: int | None) -> int:
    d = dist.copy()
    if excluded is not None:
        d[excluded] = -np.inf
    return int(np.argmax(d))


def greedy_rationale(
    model: NextOccupationModel, panel: pa.Table, row: int, *, move: bool = True, max_size: int | None = None
) -> Rationale:
    """Rationalise the model's prediction at panel row ``row`` (see module docstring).

    Args:
        move: predict among jobs other than the previous one (the previous job of the *whole* history, so
            that the full and the partial histories are asked the same question).
        max_size: stop after this many jobs even if the prediction is not reproduced (None: up to the
            whole history, which reproduces it by definition).
    """
    taxonomy = model.taxonomy
    arr = panel_arrays(panel, taxonomy)
    person = int(arr.person[row])
    start = int(arr.starts[person])
    H = int(arr.position[row])
    hist_rows = np.arange(start, start + H)
    excluded = int(arr.prev[row]) if move and H > 0 else None
    pid = str(panel.column(PERSON_ID)[row].as_py())

    def score(subsets: list[list[int]]) -> np.ndarray:
        """``[len(subsets), K]`` distribution at the target row given each subset of history positions."""
        pieces = [np.append(hist_rows[sorted(s)], row) for s in subsets]
        lengths = np.array([len(p) for p in pieces])
        rows = np.concatenate(pieces)
        _, career, offset = career_rows(np.zeros(len(pieces), dtype=np.int64), lengths)
        ids = variant_ids(np.full(len(pieces), pid, dtype=object), np.arange(len(pieces)), tag="~r")[career]
        built = build_panel(panel, rows, ids)
        return score_rows(model, built, offset + lengths - 1)

    full, empty = score([list(range(H)), []])
    predicted = _top(full, excluded)
    chosen: list[int] = []
    probs = [float(np.exp(empty[predicted]))]
    reproduced = _top(empty, excluded) == predicted
    limit = H if max_size is None else min(H, max_size)
    while not reproduced and len(chosen) < limit:
        candidates = [c for c in range(H) if c not in chosen]
        dists = score([chosen + [c] for c in candidates])  # one call for every candidate addition
        best = int(np.argmax(dists[:, predicted]))
        chosen.append(candidates[best])
        probs.append(float(np.exp(dists[best, predicted])))
        reproduced = _top(dists[best], excluded) == predicted
    return Rationale(
        person_id=pid,
        row=row,
        history=tuple(int(x) for x in arr.occ[hist_rows]),
        history_years=tuple(int(y) for y in arr.year[hist_rows]),
        predicted=predicted,
        observed=int(arr.occ[row]),
        chosen=tuple(chosen),
        probs=tuple(probs),
        full_prob=float(np.exp(full[predicted])),
        reproduced=reproduced,
    )


def pick_examples(model: NextOccupationModel, panel: pa.Table, cfg: RationaleConfig) -> list[int]:
    """Rows to rationalise: moves (to a job other than the previous one) after at least ``min_history``
    observations, preferring those the model predicts right; at most one per person, persons by id order."""
    arr = panel_arrays(panel, model.taxonomy)
    moved = (arr.prev >= 0) & (arr.occ != arr.prev) & (arr.position >= cfg.min_history)
    rows = np.flatnonzero(moved)
    rows = rows[np.unique(arr.person[rows], return_index=True)[1]]  # the first such move of each person
    if not len(rows):
        return []
    if cfg.require_correct:
        lp = model.log_probs(panel)[rows]
        if cfg.move:
            lp[np.arange(len(rows)), arr.prev[rows]] = -np.inf
        correct = rows[np.argmax(lp, axis=1) == arr.occ[rows]]
        if len(correct):
            rows = correct
        else:
            logger.info(
                "rationale: %s predicts none of the %d moves right; rationalising moves anyway",
                model.name,
                len(rows),
            )
    return [int(r) for r in rows[: cfg.examples]]


@dataclass(frozen=True)
class SimilarPair:
    """Two careers with no state in common and the most similar representations."""

    person_a: str
    person_b: str
    similarity: float  # cosine similarity of the centred representations
    jobs_a: tuple[int, ...]  # occupation indices of the first ``years`` observations
    jobs_b: tuple[int, ...]


def similar_careers(
    model: NextOccupationModel,
    panel: pa.Table,
    years: int = 4,
    pairs: int = 5,
    *,
    max_people: int = 2000,
    kind: RepresentationKind = "auto",
) -> tuple[list[SimilarPair], str]:
    """The ``pairs`` most similar careers by representation, and the representation kind used."""
    taxonomy: Taxonomy = model.taxonomy
    arr = panel_arrays(panel, taxonomy)
    lengths = np.diff(np.append(arr.starts, len(arr)))
    people = np.flatnonzero(lengths >= years + 1)[:max_people]  # persons are in id order in a canonical panel
    if len(people) < 2:
        return [], kind
    rows, career, offset = career_rows(arr.starts[people], np.full(len(people), years + 1))
    ids = np.asarray(panel.column(PERSON_ID).to_pylist(), dtype=object)[arr.starts[people]]
    built = build_panel(panel, rows, ids[career])
    rep, resolved = representation(model, built, kind)
    z = rep[offset + years]  # [P, D] representation after the first `years` jobs
    z = z - z.mean(axis=0, keepdims=True)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    sim = z @ z.T  # [P, P] cosine similarity
    held = np.zeros((len(people), len(taxonomy)), dtype=np.float64)
    jobs = arr.occ[rows].reshape(len(people), years + 1)[:, :years]
    held[np.repeat(np.arange(len(people)), years), jobs.ravel()] = 1.0
    overlap = (held @ held.T) > 0  # a state in common (the diagonal included)
    sim[overlap] = -np.inf
    sim[np.tril_indices(len(people))] = -np.inf
    order = np.argsort(sim, axis=None)[::-1]
    used: set[int] = set()
    out: list[SimilarPair] = []
    for flat in order:
        a, b = divmod(int(flat), len(people))
        if not np.isfinite(sim[a, b]) or len(out) >= pairs:
            break
        if a in used or b in used:
            continue
        used.update((a, b))
        out.append(
            SimilarPair(
                str(ids[a]),
                str(ids[b]),
                float(sim[a, b]),
                tuple(int(j) for j in jobs[a]),
                tuple(int(j) for j in jobs[b]),
            )
        )
    return out, resolved
