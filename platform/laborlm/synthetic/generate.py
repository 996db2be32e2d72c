"""Sample synthetic careers with their exact oracle log-likelihood, shard by shard, and write the panel.

    laborlm data synth --preset resumes --people 1000000 --workers 2 --out runs/resumes

People are split into fixed-size shards by global person index (``SynthConfig.shard_size``, independent of
the number of workers). Shard ``i`` is a pure function of ``(seed, source, i)`` and the market, so the same
config gives the same panel in-process or on any number of Ray workers. Each shard becomes one Parquet file
``part-{i:05d}.parquet`` (canonical panel schema, sorted by person then year, persons never split), next to
``taxonomy.csv`` and ``synth.yaml`` (the resolved config: the data carry their generator's parameters, so
``OracleModel.from_panel`` can score any subset of them later).

The oracle (column ``oracle_logp``) is ``log p(y_t | y_<t, covariates up to t, static covariates)`` under the
generator, by forward filtering over the latent type: ``p(z | data so far)`` is updated with the likelihood
of every observed quantity that the type influences (recorded education rises, recorded occupations) and
``p(y_t | ...) = sum_z p(z | ...) p(y_t | z, ...)``. It never looks at the sampled type. Wages are not part
of it: they are outputs that models never see as inputs, so conditioning on them would set a floor no model
could reach.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from laborlm.errors import LaborLMError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers.layout import SYNTH_CONFIG_FILE, TAXONOMY_FILE, replace_folder
from laborlm.schema import EDUCATION_LEVELS, GENDERS, PANEL_SCHEMA, RACES, REGIONS
from laborlm.synthetic.config import SynthConfig, write_synth_config
from laborlm.synthetic.population import Population, draw_population
from laborlm.synthetic.process import (
    EDU_MISSING,
    EDU_SCORE,
    NUM_EDU,
    FloatArray,
    IntArray,
    Market,
    StepInputs,
    build_market,
    education_log_lik,
    education_rise_prob,
    log_prob_given_type,
    logsumexp,
    next_state_log_probs,
    record_states,
    sample_education,
    sample_state,
    step_model,
    type_log_prior,
)

logger = logging.getLogger(__name__)

_SHARD = re.compile(r"^part-\d{5}\.parquet$")  # the shard files this module writes (and may replace)


@dataclass(frozen=True)
class Careers:
    """Recorded careers of ``n`` people on their grid (``[n, T]``, valid where ``t < length``)."""

    occ: IntArray  # [n, T] state index (taxonomy order)
    edu: IntArray  # [n, T] education index, EDU_MISSING if not recorded
    wage: FloatArray  # [n, T] log wage, NaN for special states or when wages are off
    oracle_logp: FloatArray  # [n, T]
    next_log_probs: list[FloatArray] | None = (
        None  # per step: [n_active, K] oracle distribution (``full=True``)
    )


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate_panel`` did."""

    out_dir: str
    people: int
    rows: int
    files: int
    oracle_perplexity: float  # exp(-mean oracle_logp) over all person-years, first years included
    elapsed_s: float
    people_per_s: float

    def line(self) -> str:
        return (
            f"{self.out_dir}: {self.people:,} people, {self.rows:,} person-years in {self.files} file(s); "
            f"oracle perplexity {self.oracle_perplexity:.3f}; {self.elapsed_s:.1f} s ({self.people_per_s:,.0f} people/s)"
        )


def simulate(
    market: Market,
    cfg: SynthConfig,
    pop: Population,
    rng: np.random.Generator,
    observed: tuple[IntArray, IntArray] | None = None,
    full: bool = False,
) -> Careers:
    """Sample careers for ``pop`` (or score given ones) and compute the oracle at every person-year.

    Args:
        observed: ``(occ, edu)`` arrays ``[n, T]`` to condition on instead of sampling (teacher forcing): the
            oracle of an existing synthetic panel (``oracle.OracleModel``), or of a chosen history prefix in
            tests. ``rng`` then only draws the latent types and wages, which the oracle never reads.
        full: also return the oracle's whole next-state distribution at every step (``[n_active, K]`` per
            step, ``process.next_state_log_probs``).
    """
    n, T = map(int, pop.years.shape)
    K, Z = market.K, market.Z
    allow_special = cfg.recording.special_states
    noise = cfg.recording.code_noise
    wages = cfg.wages
    wage_rng = rng.spawn(1)[0]  # wages draw from their own stream: switching them off changes nothing else
    occ = np.full((n, T), -1, dtype=np.int64)
    edu = np.full((n, T), EDU_MISSING, dtype=np.int64)
    wage = np.full((n, T), np.nan)
    oracle = np.zeros((n, T))
    dists: list[FloatArray] | None = [] if full else None

    cur = np.full(n, -1, dtype=np.int64)  # last recorded state
    anchor = np.full(n, K, dtype=np.int64)  # last recorded working code (K: none yet)
    spell_start = np.zeros(n, dtype=np.int64)  # first year of the current run of the same state
    returns = np.ones((n, K))  # exp(return bonus) for codes held earlier, 1 otherwise
    log_post = np.zeros((n, Z))  # log p(type | everything recorded so far)
    z = np.zeros(n, dtype=np.int64)  # sampled type: drives sampling only, never the oracle
    edu_now = pop.first_edu.copy()
    person_wage = wage_rng.normal(0.0, wages.person_sd, n)

    for s in range(T):
        act = np.flatnonzero(pop.length > s)
        if not len(act):
            break
        year = pop.years[act, s]
        age = pop.age(year, act, cfg.population.proxy_start_age)
        if s == 0:
            # Covariates first (first education is part of the population), then the type given them.
            gap = np.zeros(len(act), dtype=np.int64)
            e = edu_now[act]
            prior = type_log_prior(
                market,
                pop.gender[act],
                pop.race[act],
                pop.region[act],
                pop.birth_year[act],
                age,
                e,
                cfg.population.type_education_tilt,
                cfg.population.type_manual_tilt,
            )
            log_post[act] = prior
            cdf = np.cumsum(np.exp(prior), axis=1)
            z[act] = np.minimum((cdf < rng.random(len(act))[:, None] * cdf[:, -1:]).sum(axis=1), Z - 1)
        else:
            # Education of year t comes before the occupation of year t; its likelihood updates the type.
            gap = year - pop.years[act, s - 1]
            e_prev = edu_now[act]
            rise = education_rise_prob(market, e_prev, cur[act], age, gap, pop.birth_year[act])  # [n_act, Z]
            e = (
                observed[1][act, s]
                if observed is not None
                else sample_education(market, rise, e_prev, z[act], rng)
            )
            post = log_post[act] + education_log_lik(rise, e_prev, e)
            log_post[act] = _update(log_post[act], post, logsumexp(post, axis=1))
        edu_now[act] = e
        has_cur = cur[act] >= 0
        tenure = np.where(has_cur, pop.years[act, max(s - 1, 0)] - spell_start[act] + 1, 0).astype(np.float64)
        x = StepInputs(
            year=year,
            age=age,
            gap=gap,
            edu=e,
            gender=pop.gender[act],
            race=pop.race[act],
            region=pop.region[act],
            cur=cur[act],
            anchor=anchor[act],
            tenure=tenure,
            returns=returns[act],
        )
        sm = step_model(market, x, allow_special)
        if observed is not None:
            y = observed[0][act, s]
        else:
            y = record_states(market, sample_state(market, sm, z[act], rng), noise, rng)
        lik = log_prob_given_type(market, sm, y, noise)  # [n_act, Z]
        if dists is not None:
            dists.append(next_state_log_probs(market, sm, log_post[act], noise))  # [n_act, K]
        # Oracle: log sum_z p(z | past) p(y | z, past); then the posterior absorbs y.
        joint = log_post[act] + lik
        logp = logsumexp(joint, axis=1)[:, 0]
        log_post[act] = _update(log_post[act], joint, logp[:, None])
        oracle[act, s] = logp
        occ[act, s] = y
        edu[act, s] = e
        if wages.enabled and observed is None:
            wage[act, s] = _log_wage(
                market, cfg, y, e, age, pop.gender[act], z[act], person_wage[act], wage_rng
            )
        # History for the next step: spells, the anchor job, and return bonuses for every job held.
        moved = y != cur[act]
        spell_start[act[moved]] = year[moved]
        work = ~market.special[y]
        anchor[act[work]] = y[work]
        returns[act[work], y[work]] = math.exp(market.dyn.return_bonus)
        cur[act] = y
    return Careers(occ, edu, wage, oracle, dists)


def _update(prior: FloatArray, joint: FloatArray, norm: FloatArray) -> FloatArray:
    """The type posterior ``joint - norm`` (``[n, Z]``); ``prior`` unchanged in rows where the observation has
    probability zero under every type (``norm`` -inf).

    Sampled careers never have such rows. A history given to the oracle can: an education that falls or rises
    where no type can raise it, an education recorded after years without one, a special state in a preset that
    has none. Such an observation says nothing about the type (all likelihoods are equal, zero), so the
    posterior stays as it was instead of becoming NaN (-inf minus -inf) and poisoning every later step.
    """
    ok = np.isfinite(norm)  # [n, 1]
    out: FloatArray = np.where(ok, joint - np.where(ok, norm, 0.0), prior)
    return out


def _log_wage(
    m: Market,
    cfg: SynthConfig,
    y: IntArray,
    e: IntArray,
    age: FloatArray,
    gender: IntArray,
    z: IntArray,
    person: FloatArray,
    rng: np.random.Generator,
) -> FloatArray:
    """Log hourly wage of a working person-year; NaN in special states. Depends on the type only through
    ``wage_type_effect``."""
    w = cfg.wages
    score = np.where(e == EDU_MISSING, 2.0, EDU_SCORE[np.minimum(e, NUM_EDU - 1)])
    exper = np.maximum(age - 18.0, 0.0)
    out = (
        w.intercept
        + 0.12 * m.requirement_cluster[m.cluster_of[y]]
        + w.occupation_sd * m.wage_occ[y]
        + w.education_return * score
        + w.experience * exper
        + w.experience_sq * exper**2
        + w.wage_type_effect * w.type_sd * m.type_wage[z]
        + w.female_gap * (gender == 0)
        + person
        + rng.normal(0.0, w.noise_sd, len(y))
    )
    return np.where(m.special[y], np.nan, out)


# --- shards ------------------------------------------------------------------------------------------------


def shard_rngs(cfg: SynthConfig, shard: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(population, careers) generators of a shard: children of SeedSequence([seed, source, shard]).

    Separate streams keep the people of a shard fixed when only the dynamics change.
    """
    ss = np.random.SeedSequence([cfg.seed, zlib.crc32(cfg.source.encode()), shard])
    pop_ss, career_ss = ss.spawn(2)
    return np.random.default_rng(pop_ss), np.random.default_rng(career_ss)


def generate_shard(cfg: SynthConfig, shard: int) -> pa.Table:
    """The canonical panel rows of shard ``shard`` (people ``shard * shard_size`` onwards), sorted."""
    lo = shard * cfg.shard_size
    hi = min(lo + cfg.shard_size, cfg.people)
    if not 0 <= lo < hi:
        raise ValueError(f"shard {shard} is outside 0..{cfg.num_shards - 1}")
    market = build_market(cfg.dynamics, cfg.market_seed)
    pop_rng, career_rng = shard_rngs(cfg, shard)
    pop = draw_population(cfg, hi - lo, pop_rng)
    careers = simulate(market, cfg, pop, career_rng)
    return careers_table(cfg, pop, careers, first_person=lo)


def careers_table(cfg: SynthConfig, pop: Population, careers: Careers, first_person: int) -> pa.Table:
    """Flatten ``[n, T]`` careers into panel rows (person-major, so sorted by person id then year)."""
    n, T = pop.years.shape
    mask = np.arange(T)[None, :] < pop.length[:, None]  # [n, T]
    person = np.repeat(np.arange(n), pop.length)
    rows = len(person)
    codes = pa.array(Taxonomy.default().codes, pa.string())
    ids = pa.array([f"{cfg.source}-{i:08d}" for i in range(first_person, first_person + n)], pa.string())
    edu_idx = careers.edu[mask]
    wage = careers.wage[mask]
    person_idx = pa.array(person)

    def categorical(values: tuple[str, ...], idx: IntArray) -> pa.Array:
        """Codes -> strings; indices past the vocabulary (the "not recorded" levels) become nulls."""
        return pc.take(pa.array(values, pa.string()), pa.array(idx, mask=idx >= len(values)))

    def static(values: tuple[str, ...], per_person: IntArray) -> pa.Array:
        return pc.take(categorical(values, per_person), person_idx)

    birth = pa.array(pop.birth_year, pa.int32(), mask=pop.birth_year <= 0)
    columns: dict[str, Any] = {
        "person_id": pc.take(ids, person_idx),
        "year": pa.array(pop.years[mask], pa.int32()),
        "occupation": pc.take(codes, pa.array(careers.occ[mask])),
        "education": categorical(EDUCATION_LEVELS, edu_idx),
        "wage": pa.array(wage, pa.float64(), mask=np.isnan(wage)),
        "weight": pa.nulls(rows, pa.float64()),
        "region": static(REGIONS, pop.region),
        "gender": static(GENDERS, pop.gender),
        "race": static(RACES, pop.race),
        "birth_year": pc.take(birth, person_idx),
        "source": pa.array(np.full(rows, cfg.source, dtype=object), pa.string()),
        "split": pa.nulls(rows, pa.string()),
        "oracle_logp": pa.array(careers.oracle_logp[mask], pa.float64()),
    }
    return pa.Table.from_pydict(columns, schema=PANEL_SCHEMA)


def write_shard(cfg: SynthConfig, shard: int, out_dir: Path) -> dict[str, float]:
    """Generate shard ``shard`` and write ``part-{shard:05d}.parquet``; return its counts for the summary."""
    table = generate_shard(cfg, shard)
    pq.write_table(table, out_dir / f"part-{shard:05d}.parquet")
    logp = table.column("oracle_logp").to_numpy()
    return {
        "shard": shard,
        "people": min(cfg.shard_size, cfg.people - shard * cfg.shard_size),
        "rows": table.num_rows,
        "sum_logp": float(logp.sum()),
    }


def _write_shard_batch(
    batch: dict[str, np.ndarray], config: SynthConfig, out_dir: str
) -> dict[str, np.ndarray]:
    """Ray Data UDF: one batch = one shard index (module-level, so workers import it)."""
    out = [write_shard(config, int(i), Path(out_dir)) for i in batch["id"]]
    return {k: np.array([o[k] for o in out]) for k in ("shard", "people", "rows", "sum_logp")}


def generate_panel(config: SynthConfig, out_dir: Path, *, num_workers: int | None = None) -> SynthSummary:
    """Generate the configured synthetic panel into ``out_dir`` (Parquet shards, ``taxonomy.csv``, ``synth.yaml``).

    The folder is written beside ``out_dir`` and swapped in at the end (``readers.layout.replace_folder``), so
    a failed run leaves the previous panel intact and no stale shard of a larger earlier run survives.

    Args:
        num_workers: None generates in this process (with a progress bar on a terminal); an int runs a Ray
            Data pipeline over the shards with that many CPU workers. Ray must already be initialised by the
            caller (library code never calls ``ray.init``).

    Raises:
        LaborLMError: ``num_workers`` is given but Ray is not initialised, or ``out_dir`` holds other files.
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    if num_workers is not None:
        _check_ray(num_workers)
    build_market(config.dynamics, config.market_seed)  # fail fast (and warm the cache) before any shard

    def write(folder: Path) -> list[dict[str, float]]:
        write_synth_config(config, folder)
        Taxonomy.default().to_csv(folder / TAXONOMY_FILE)
        if num_workers is None:
            shards = tqdm(
                range(config.num_shards),
                desc=f"synth {config.source}",
                unit="shard",
                disable=not sys.stderr.isatty(),
            )
            return [write_shard(config, i, folder) for i in shards]
        return _run_ray(config, folder, num_workers)

    results = replace_folder(out_dir, _owned, write)
    rows = int(sum(r["rows"] for r in results))
    people = int(sum(r["people"] for r in results))
    sum_logp = float(sum(r["sum_logp"] for r in results))
    elapsed = time.perf_counter() - start
    summary = SynthSummary(
        out_dir=str(out_dir),
        people=people,
        rows=rows,
        files=len(results),
        oracle_perplexity=math.exp(-sum_logp / rows),
        elapsed_s=elapsed,
        people_per_s=people / elapsed,
    )
    logger.info("%s", summary.line())
    return summary


def _owned(name: str) -> bool:
    """The files ``generate_panel`` writes, and so may replace in a folder it generated before."""
    return name in (TAXONOMY_FILE, SYNTH_CONFIG_FILE) or bool(_SHARD.match(name))


def _check_ray(num_workers: int) -> None:
    import ray

    if num_workers < 1:
        raise LaborLMError(f"num_workers must be >= 1, got {num_workers}")
    if not ray.is_initialized():
        raise LaborLMError("generate_panel(num_workers=...) needs Ray initialised by the caller (ray.init)")


def _run_ray(config: SynthConfig, out_dir: Path, num_workers: int) -> list[dict[str, float]]:
    """Ray Data over shard indices: each task generates and writes one shard and returns its counts.

    Blocks of one shard index each, ``batch_size=1`` and ``num_cpus=1`` per task, and a task pool of
    ``num_workers``, so that many shards are generated at a time; the shard files go straight to ``out_dir`` (local or shared storage) from the workers.
    """
    import ray

    ds = ray.data.range(config.num_shards, override_num_blocks=config.num_shards).map_batches(
        functools.partial(_write_shard_batch, config=config, out_dir=str(out_dir.resolve())),
        batch_size=1,
        compute=ray.data.TaskPoolStrategy(size=min(num_workers, config.num_shards)),
        num_cpus=1,
        batch_format="numpy",
    )
    return [dict(r) for r in ds.take_all()]
