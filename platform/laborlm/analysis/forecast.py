"""Forecasting careers years ahead (CAREER Tables 1-2), for any model, and LABOR-LLM's direct-vs-composed gap.

    laborlm analyze forecast [--config YAML] [forecast.samples=1000 ...]

CAREER's protocol (Appendix G): fit on every observation up to a cutoff year; for each test person
observed before the cutoff and in every forecast year, condition on the history up to the cutoff, sample
1,000 trajectories forward from the model's own one-step distributions, and score the observed job of
each forecast year. Covariates of later years (education, the year itself) are taken as observed; jobs
after the cutoff never are. Here the forecast years are ``cutoff_year + h`` for ``h`` in ``horizons``
(2, 4, 6 on the biennial surveys: CAREER's 2015, 2017 and 2019 after a last pre-cutoff wave in 2013).

What is estimated, per forecast target (person i, year ``cutoff + h``, reached after ``s`` observations)::

    p_i,h = p(y_{t+s} | y_{<=t}, x_{<=t+s}) = sum over y_{t+1..t+s-1} of prod_u p(y_{t+u} | y_{<t+u}, x_{t+u})
         ~= (1/S) sum_j p(y_{t+s} | y_{<=t}, sampled y^j_{t+1..t+s-1}, x)                  (Monte Carlo)

and the h-year perplexity is ``exp(-mean_i log p_i,h)`` over the persons (the overall figure pools every
target of every horizon). Each step's samples are scored together: the ``persons x samples`` careers of a
step are rows of one panel (``panels.build_panel``) scored in bounded chunks, so a step costs one
``log_probs`` pass whatever the model. The Monte-Carlo standard error of each ``p`` propagates to the
perplexity by the delta method; ``log`` of a mean is biased low by about ``CV^2 / (2S)``, negligible at
S = 1,000. The *sample* standard error understates the error where a rare intermediate job makes the
observed one likely and went unsampled; ``exact_forecast`` also returns each target's exact Monte-Carlo
error (``draw_sd``), which the tests compare against.

``exact_forecast`` computes the same sum without sampling, by enumerating the intermediate jobs: for a
target two observations ahead it is the vector-matrix product ``p(y_{t+1} | h) @ P`` with
``P[k, :] = p(y_{t+2} | h, y_{t+1} = k)``, one row per possible intermediate job (K careers per person, one
``log_probs`` pass). For the synthetic oracle this is the true multi-step probability, the type posterior
marginalised exactly as the oracle's one-step distributions do. Further steps multiply the paths by K each
(the oracle's process remembers every job held, its tenure and the type posterior, so its state is the
whole path, not the last job): ``exact_steps`` bounds the enumeration.

LABOR-LLM's question, whether a direct multi-year prediction equals the composition of one-year ones, is
``direct_vs_composed``: a Markov chain fitted on k-step transitions (``horizon.DirectHorizonMarkov``)
against the k-th power of the one-step chain, both exact, on the same targets.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from laborlm.analysis.horizon import DirectHorizonMarkov
from laborlm.analysis.panels import (
    DEFAULT_MAX_ROWS,
    build_panel,
    career_rows,
    sample_categorical,
    score_rows,
    variant_ids,
)
from laborlm.errors import ConfigError, InputDataError, LaborLMError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import PERSON_ID, YEAR
from laborlm.sequences import panel_arrays

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForecastConfig:
    cutoff_year: int = 2013  # training data and histories: years <= cutoff (2013 = the last wave before 2014)
    horizons: tuple[int, ...] = (
        2,
        4,
        6,
    )  # forecast years are cutoff_year + h; persons must be observed in each
    samples: int = 1000  # trajectories per person (CAREER: 1,000)
    max_people: int | None = 40  # forecast the first N eligible test persons by id; None: all of them
    freeze_year: bool = True  # neural models see the year covariate capped at the cutoff (CAREER's protocol)
    exact_steps: int = (
        2  # exact p for targets at most this many observations after the cutoff (K^(s-1) careers)
    )
    exact_models: tuple[str, ...] = ("oracle",)  # models whose forecast is also computed exactly
    direct_steps: tuple[int, ...] = (1, 2, 3)  # direct vs composed Markov chains, in observations ahead
    max_rows: int = DEFAULT_MAX_ROWS  # panel rows per log_probs call (memory: rows x K float64)
    seed: int = 0  # Monte-Carlo draws

    def __post_init__(self) -> None:
        problems = []
        if (
            not self.horizons
            or any(h < 1 for h in self.horizons)
            or len(set(self.horizons)) != len(self.horizons)
        ):
            problems.append(f"horizons: expected distinct years >= 1, got {list(self.horizons)}")
        if self.samples < 2:
            problems.append(f"samples: expected >= 2 (the Monte-Carlo error needs two), got {self.samples}")
        if self.max_people is not None and self.max_people < 1:
            problems.append(f"max_people: expected >= 1 or null, got {self.max_people}")
        if self.exact_steps < 1 or self.exact_steps > 3:
            problems.append(
                f"exact_steps: expected 1..3 (each step multiplies the work by K), got {self.exact_steps}"
            )
        if any(k < 1 for k in self.direct_steps):
            problems.append(f"direct_steps: expected steps >= 1, got {list(self.direct_steps)}")
        if self.max_rows < 1:
            problems.append(f"max_rows: expected >= 1, got {self.max_rows}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class ForecastTask:
    """Who is forecast, from which history, and which rows are the targets.

    ``panel`` holds only the eligible persons, each as ``history`` rows (years <= cutoff) followed by
    ``future`` rows up to the last forecast year; future rows between forecast years are sampled through
    but not scored.
    """

    panel: pa.Table
    taxonomy: Taxonomy
    cutoff_year: int
    horizons: tuple[int, ...]
    person_ids: np.ndarray  # [P] object
    start: np.ndarray  # [P] first row of each person
    history: np.ndarray  # [P] rows up to the cutoff (>= 1)
    future: np.ndarray  # [P] rows after the cutoff (>= len(horizons))
    occ: np.ndarray  # [n_rows] observed occupation index
    target_row: np.ndarray  # [M] panel row of each forecast target
    target_person: np.ndarray  # [M]
    target_step: np.ndarray  # [M] observations after the cutoff, 1-based (1 = the first future row)
    target_horizon: np.ndarray  # [M] years after the cutoff

    @property
    def n_people(self) -> int:
        return len(self.start)

    def target_at(self) -> np.ndarray:
        """``[P, max future]`` target index of each (person, future row), -1 where the row is not a target."""
        out = np.full((self.n_people, int(self.future.max())), -1, dtype=np.int64)
        out[self.target_person, self.target_step - 1] = np.arange(len(self.target_row))
        return out


def forecast_task(
    panel: pa.Table,
    taxonomy: Taxonomy,
    cutoff_year: int,
    horizons: tuple[int, ...],
    max_people: int | None = None,
) -> ForecastTask:
    """The forecasting set of a panel (normally the test split): CAREER's eligibility rule.

    A person is forecast when observed at or before ``cutoff_year`` and in every year ``cutoff_year + h``.

    Raises:
        InputDataError: no person of the panel qualifies.
    """
    arr = panel_arrays(panel, taxonomy)
    years = arr.year
    last_year = cutoff_year + max(horizons)
    n_people = arr.n_people
    before = np.bincount(arr.person, weights=years <= cutoff_year, minlength=n_people) > 0
    eligible = before.copy()
    for h in horizons:
        eligible &= np.bincount(arr.person, weights=years == cutoff_year + h, minlength=n_people) > 0
    ids = np.asarray(panel.column(PERSON_ID).to_pylist(), dtype=object)[arr.starts]
    chosen = np.flatnonzero(eligible)
    if max_people is not None:
        chosen = chosen[np.argsort(ids[chosen], kind="stable")][:max_people]
        chosen.sort()
    if not len(chosen):
        raise InputDataError(
            "<forecast panel>",
            None,
            YEAR,
            f"no person is observed by {cutoff_year} and in every forecast year "
            f"{', '.join(str(cutoff_year + h) for h in horizons)}",
        )
    keep = np.isin(arr.person, chosen) & (years <= last_year)
    table = panel.filter(pa.array(keep))
    sub = panel_arrays(table, taxonomy)
    y = sub.year
    start = sub.starts
    history = np.bincount(sub.person, weights=y <= cutoff_year, minlength=sub.n_people).astype(np.int64)
    length = np.diff(np.append(start, len(sub)))
    is_target = np.isin(y - cutoff_year, np.asarray(horizons)) & (y > cutoff_year)
    target_row = np.flatnonzero(is_target)
    target_person = sub.person[target_row]
    task = ForecastTask(
        panel=table,
        taxonomy=taxonomy,
        cutoff_year=cutoff_year,
        horizons=tuple(horizons),
        person_ids=np.asarray(table.column(PERSON_ID).to_pylist(), dtype=object)[start],
        start=start.astype(np.int64),
        history=history,
        future=(length - history).astype(np.int64),
        occ=sub.occ,
        target_row=target_row,
        target_person=target_person,
        target_step=target_row - start[target_person] - history[target_person] + 1,
        target_horizon=y[target_row] - cutoff_year,
    )
    logger.info(
        "forecast set: %d of %d persons, %d targets (cutoff %d, horizons %s)",
        task.n_people,
        n_people,
        len(target_row),
        cutoff_year,
        list(horizons),
    )
    return task


@dataclass(frozen=True)
class ForecastEstimate:
    """One model's forecast probability of every target of a ``ForecastTask``."""

    model: str
    method: str  # "monte_carlo" or "exact"
    p: np.ndarray  # [M] p(observed job of the target | history up to the cutoff); NaN where not computed
    se: np.ndarray  # [M] Monte-Carlo standard error of p (0 where the value is exact)
    samples: int  # trajectories per person (0 for exact)
    elapsed_s: float = 0.0
    draw_sd: np.ndarray | None = None  # [M] exact only: sd of p(y | one sampled path), i.e. the Monte-Carlo
    #   standard error of a single trajectory (sampling with S trajectories has standard error draw_sd / sqrt(S))

    def perplexity(self, mask: np.ndarray | None = None) -> tuple[float, float]:
        """``(exp(-mean log p), its Monte-Carlo standard error)`` over the targets in ``mask``.

        Delta method: ``se(log p_i) = se_i / p_i``, independent across persons, so
        ``se(mean log p) = sqrt(sum se_i^2 / p_i^2) / m`` and ``se(ppl) = ppl * se(mean log p)``. NaN when a
        selected target was not computed (an exact value beyond ``exact_steps``).
        """
        p = self.p if mask is None else self.p[mask]
        se = self.se if mask is None else self.se[mask]
        if p.size == 0 or np.isnan(p).any():
            return float("nan"), float("nan")
        with np.errstate(divide="ignore"):
            mean_log = float(np.mean(np.log(p)))
            se_log = float(np.sqrt(np.sum((se / p) ** 2)) / p.size)
        ppl = math.exp(-mean_log) if mean_log > -700 else float("inf")
        return ppl, ppl * se_log


@dataclass(frozen=True)
class ForecastRow:
    """One row of the forecasting table: perplexity (± Monte-Carlo error) overall and per horizon."""

    label: str
    overall: tuple[float, float]
    by_horizon: dict[int, tuple[float, float]] = field(default_factory=dict)


def summarize(task: ForecastTask, estimate: ForecastEstimate, label: str | None = None) -> ForecastRow:
    by = {h: estimate.perplexity(task.target_horizon == h) for h in task.horizons}
    return ForecastRow(label or estimate.model, estimate.perplexity(), by)


def _check_taxonomy(model: NextOccupationModel, task: ForecastTask) -> None:
    if tuple(model.taxonomy.codes) != tuple(task.taxonomy.codes):
        raise LaborLMError(
            f"{model.name}: its taxonomy ({len(model.taxonomy)} states) differs from the panel's "
            f"({len(task.taxonomy)}); forecasts index jobs by taxonomy position"
        )


def _careers(
    task: ForecastTask, person: np.ndarray, steps: int, chosen: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of careers ``history + steps + 1`` long (the last row is the one scored), one per entry of
    ``person``, with future rows ``0..steps-1`` set to ``chosen[c, :steps]``.

    Returns ``rows``, ``career`` (per row), ``occupations`` (per row, -1 = keep the observed job) and the
    index of each career's last row.
    """
    lengths = task.history[person] + steps + 1
    rows, career, offset = career_rows(task.start[person], lengths)
    override = np.full(len(rows), -1, dtype=np.int64)
    if steps and chosen is not None:
        future_pos = np.arange(len(rows)) - offset[career] - task.history[person][career]
        sel = (future_pos >= 0) & (future_pos < steps)
        override[sel] = chosen[career[sel], future_pos[sel]]
    return rows, career, override, offset + lengths - 1


def sample_forecast(
    model: NextOccupationModel,
    task: ForecastTask,
    samples: int = 1000,
    *,
    seed: int = 0,
    freeze_year: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> ForecastEstimate:
    """Monte-Carlo forecast (see module docstring): ``samples`` trajectories per person from ``model``.

    Step ``s`` scores, for every person still being forecast and every sample, the career "history, then the
    sampled jobs of the first ``s`` future rows, then future row ``s``" (covariates of every row as observed),
    keeps ``p(observed job)`` where row ``s`` is a forecast target, and draws the job of row ``s`` for the
    next step. At ``s = 0`` all samples share the history, so it is scored once and sampled ``samples`` times.
    """
    _check_taxonomy(model, task)
    started = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    P, S = task.n_people, samples
    F = int(task.future.max())
    target_at = task.target_at()
    values = np.full((len(task.target_row), S), np.nan)
    sampled = np.full((P, S, F), -1, dtype=np.int64)
    for s in range(F):
        act = np.flatnonzero(task.future > s)
        copies = 1 if s == 0 else S
        person = np.repeat(act, copies)
        draw = np.tile(np.arange(copies), len(act))
        chosen = sampled[person, draw] if s else None
        rows, career, override, last = _careers(task, person, s, chosen)
        ids = variant_ids(task.person_ids[person], draw)[career]
        panel = build_panel(task.panel, rows, ids, override, task.taxonomy)
        lp = score_rows(model, panel, last, freeze_year=freeze_year, max_rows=max_rows)  # [careers, K]
        observed = task.occ[task.start[act] + task.history[act] + s]  # [A]
        targets = target_at[act, s]
        is_target = targets >= 0
        p_obs = np.exp(lp[np.arange(len(lp)), np.repeat(observed, copies)]).reshape(len(act), copies)
        values[targets[is_target]] = p_obs[is_target]  # broadcasts the shared s = 0 value over samples
        if s + 1 < F:
            more = task.future[act] > s + 1
            if s == 0:
                sampled[act, :, 0] = sample_categorical(lp, rng, size=S)
            else:
                keep = np.repeat(more, copies)
                nxt = np.full(len(lp), -1, dtype=np.int64)
                nxt[keep] = sample_categorical(lp[keep], rng)
                sampled[act, :, s] = nxt.reshape(len(act), S)
        logger.debug("%s: forecast step %d: %d careers, %d rows", model.name, s + 1, len(person), len(rows))
    p = values.mean(axis=1)
    # Sample standard error; 0 at the first step after the cutoff, where every sample shares the history.
    se = np.where(task.target_step == 1, 0.0, values.std(axis=1, ddof=1) / math.sqrt(S))
    elapsed = time.perf_counter() - started
    logger.info("%s: %d trajectories x %d persons forecast in %.1f s", model.name, S, P, elapsed)
    return ForecastEstimate(model.name, "monte_carlo", p, se, S, elapsed)


def exact_forecast(
    model: NextOccupationModel,
    task: ForecastTask,
    max_steps: int = 2,
    *,
    freeze_year: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_careers: int = 200_000,
) -> ForecastEstimate:
    """The forecast probabilities without sampling, for targets at most ``max_steps`` rows after the cutoff.

    Paths of intermediate jobs are enumerated level by level: level ``s`` holds every path through future
    rows ``0..s-1`` with its probability; one ``log_probs`` pass gives each path's distribution at row ``s``,
    which scores the targets at row ``s`` (``sum_paths p(path) p(y | path)``) and extends every path by every
    job of positive probability. Persons are processed in groups so that no level exceeds ``max_careers``
    careers. Targets further out are NaN.
    """
    _check_taxonomy(model, task)
    started = time.perf_counter()
    K = len(task.taxonomy)
    target_at = task.target_at()
    p = np.full(len(task.target_row), np.nan)
    p2 = np.full(len(task.target_row), np.nan)  # second moment of p(y | path) over paths
    reached = task.target_step <= max_steps
    p[reached] = 0.0
    p2[reached] = 0.0
    group = max(1, max_careers // K ** max(max_steps - 1, 0))
    for lo in range(0, task.n_people, group):
        people = np.arange(lo, min(lo + group, task.n_people))
        path_person = people
        path_occ = np.zeros((len(people), 0), dtype=np.int64)
        path_logw = np.zeros(len(people))
        for s in range(max_steps):
            alive = task.future[path_person] > s
            path_person, path_occ, path_logw = path_person[alive], path_occ[alive], path_logw[alive]
            if not len(path_person):
                break
            ids = variant_ids(task.person_ids[path_person], np.arange(len(path_person)))
            rows, career, override, last = _careers(task, path_person, s, path_occ)
            panel = build_panel(task.panel, rows, ids[career], override, task.taxonomy)
            lp = score_rows(model, panel, last, freeze_year=freeze_year, max_rows=max_rows)  # [paths, K]
            observed = task.occ[task.start[path_person] + task.history[path_person] + s]
            targets = target_at[path_person, s]
            hit = targets >= 0
            lp_obs = lp[np.flatnonzero(hit), observed[hit]]
            np.add.at(p, targets[hit], np.exp(path_logw[hit] + lp_obs))
            np.add.at(p2, targets[hit], np.exp(path_logw[hit] + 2.0 * lp_obs))
            if s + 1 < max_steps:
                # Every path times every job of positive probability: the next level's paths.
                src, job = np.nonzero(np.isfinite(lp))
                path_logw = path_logw[src] + lp[src, job]
                path_occ = np.concatenate([path_occ[src], job[:, None]], axis=1)
                path_person = path_person[src]
    elapsed = time.perf_counter() - started
    logger.info(
        "%s: exact forecast up to %d steps for %d persons in %.1f s",
        model.name,
        max_steps,
        task.n_people,
        elapsed,
    )
    draw_sd = np.sqrt(np.maximum(p2 - p**2, 0.0))
    return ForecastEstimate(model.name, "exact", p, np.zeros_like(p), 0, elapsed, draw_sd)


@dataclass(frozen=True)
class DirectComparison:
    """Direct k-step vs composed one-step Markov forecasts on the same targets (LABOR-LLM's question)."""

    steps: int  # observations ahead of the last one at or before the cutoff
    targets: int
    composed_perplexity: float  # one-step chain composed k times: (T^k)[y_t, y_{t+k}]
    direct_perplexity: float  # chain fitted on k-step transitions
    mean_total_variation: float  # mean over targets of TV(direct row, composed row): 0 iff they agree

    @property
    def gap(self) -> float:
        """Direct minus composed perplexity: > 0 when composing one-step predictions forecasts better."""
        return self.direct_perplexity - self.composed_perplexity


def direct_vs_composed(
    train: pa.Table, task: ForecastTask, steps: tuple[int, ...] = (1, 2, 3)
) -> list[DirectComparison]:
    """Fit the one-step chain and a direct chain per k on ``train``; compare them on the task's future rows.

    Every future row ``k`` observations after the last pre-cutoff one is a target (not only forecast years),
    so each k uses every person observed that far. At ``k = 1`` the two are the same model (gap 0), a check.
    """
    from laborlm.baselines.markov import MarkovModel

    one_step = MarkovModel(task.taxonomy, order=1)
    one_step.fit(train)
    last_hist = task.occ[task.start + task.history - 1]  # [P] the job at the cutoff
    out = []
    for k in steps:
        people = np.flatnonzero(task.future >= k)
        if not len(people):
            continue
        rows = task.start[people] + task.history[people] + k - 1
        direct = DirectHorizonMarkov(task.taxonomy, k)
        direct.fit(train)
        d_rows = np.exp(
            direct.log_probs(task.panel)[rows]
        )  # [n, K] p(. | job k rows earlier = at the cutoff)
        composed = np.linalg.matrix_power(one_step.trans, k)[last_hist[people]]  # [n, K]
        obs = task.occ[rows]
        idx = np.arange(len(rows))
        out.append(
            DirectComparison(
                steps=k,
                targets=len(rows),
                composed_perplexity=float(np.exp(-np.mean(np.log(composed[idx, obs])))),
                direct_perplexity=float(np.exp(-np.mean(np.log(d_rows[idx, obs])))),
                mean_total_variation=float(0.5 * np.abs(d_rows - composed).sum(axis=1).mean()),
            )
        )
    return out
