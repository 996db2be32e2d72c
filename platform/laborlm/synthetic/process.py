"""The synthetic labour market: its parameters, built from a seed, and the per-step probabilities.

Both the sampler (``generate.py``) and the exact oracle call the functions below, so the probabilities a
career is drawn from and the probabilities the oracle reports cannot disagree.

Notation (arrays carry their shape in comments): ``K`` states, i.e. the taxonomy's working codes then the
special states (unemployed, out of labour force, in school); ``C`` clusters, the detailed 1990 Census groups
of the working codes (+ military); ``Z`` latent worker types (career tracks), drawn once per person from the
covariates and the first recorded education, never written to the panel.

One step of a career, for a person with recorded history ``h`` (codes, years, education) and type ``z``:

1. education: with probability ``1 - (1 - h_z)^gap`` the level rises one step (``h_z`` depends on level, age,
   being in school and the type); it never falls.
2. occupation, in two stages as in CAREER (eq. 1-3): stay in the current state with ``sigmoid(eta_z)``;
   otherwise move, first choosing a nest (work, unemployed, out of the labour force, school) with
   ``softmax(B_z)`` (the current special state's nest excluded), then, within work, a code
   ``j != current`` with ``softmax_j(A_j + V[z, cluster(j)] + F[z, j])``. ``A`` is the type-free part
   (employment share, education fit, covariates, year, relatedness to the last job, returns to jobs held
   earlier), ``V`` the type's cluster preferences and ``F`` its few favourite codes. The first observation
   has no stay stage. Without special states (resumes) the nests are work only: the same dynamics,
   renormalised over working codes.
3. recording: a working code is swapped for a neighbouring code of its cluster with probability ``noise``
   (coding error; 6-7% in the presets). The next step conditions on the *recorded* history, so the noise is part of the transition and
   the oracle stays exact.

Why the type-free/type split: the within-work normaliser of type ``z`` is
``N_z = sum_c exp(V[z, c]) * S_c + sum_f exp(A_f + V[z, c(f)]) * (exp(F[z, f]) - 1)`` with
``S_c = sum_{j in c} exp(A_j)``, so the oracle costs ``O(K + Z*C + Z*F)`` per person-step instead of
``O(Z*K)``. ``dense_log_probs`` computes the same distribution the direct way; the tests compare the two.
The oracle's whole next-state distribution (``next_state_log_probs``, what ``OracleModel`` reports) mixes
the type posterior in first and applies the recording noise last, at ``O(Z*K)`` per person-step.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from laborlm.occupations.taxonomy import IN_SCHOOL, MANUAL_GROUP, OUT_OF_LABOR_FORCE, UNEMPLOYED, Taxonomy
from laborlm.schema import EDUCATION_LEVELS, RACES, REGIONS
from laborlm.synthetic.config import DynamicsConfig

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# --- covariate coding --------------------------------------------------------------------------------------
NUM_EDU = len(EDUCATION_LEVELS)  # 8 recorded levels
EDU_MISSING = NUM_EDU  # "education not recorded" is a level of its own: the dynamics use what is recorded
EDU_SCORE = np.array([0.0, 1.0, 2.0, 2.5, 4.0, 5.0, 6.0, 6.0])  # rough years beyond 11th grade, per level
MISSING_SCORE = 2.0  # the score used for "not recorded" where a number is needed
# Usual age of reaching the *next* level from each level (a rise is impossible more than a year before it).
NEXT_LEVEL_AGE = np.array([18.0, 19.0, 21.0, 22.0, 24.0, 27.0, np.inf, np.inf])
# Per-level yearly rise-hazard logits (before type, school and age terms); professional/doctorate are terminal.
EDU_RISE_BASE = np.array([1.2, -1.2, -0.4, -1.6, -2.4, -2.8, -np.inf, -np.inf])
# Which level a rise leads to: some college -> associates or bachelors; bachelors -> a graduate degree.
EDU_NEXT = np.zeros((NUM_EDU, NUM_EDU))
for _frm, _to in {
    0: {1: 1.0},
    1: {2: 1.0},
    2: {3: 0.35, 4: 0.65},
    3: {4: 1.0},
    4: {5: 0.7, 6: 0.15, 7: 0.15},
    5: {7: 1.0},
}.items():
    for _lvl, _p in _to.items():
        EDU_NEXT[_frm, _lvl] = _p
LEVEL_MIN_AGE = np.array([0.0, 17.0, 18.0, 19.0, 21.0, 23.0, 24.0, 26.0])  # youngest age holding each level
GENDER_MISSING = 2  # female=0, male=1 (schema.GENDERS), 2 = not recorded
RACE_MISSING = len(RACES)
REGION_MISSING = len(REGIONS)

# Nests of the move stage; a state's kind is its nest.
WORK, UNEMP, OLF, SCHOOL = 0, 1, 2, 3
NESTS = 4
SPECIAL_KINDS = {UNEMPLOYED: UNEMP, OUT_OF_LABOR_FORCE: OLF, IN_SCHOOL: SCHOOL}

# Recession years: extra unemployment (NBER recessions and the slow recoveries after them).
RECESSION = {
    1980: 0.7,
    1981: 0.6,
    1982: 1.0,
    1983: 0.8,
    1990: 0.3,
    1991: 0.7,
    1992: 0.6,
    2001: 0.4,
    2002: 0.6,
    2003: 0.4,
    2008: 0.4,
    2009: 1.0,
    2010: 1.0,
    2011: 0.7,
}
YEAR_RANGE = (1900, 2100)

# Per detailed group: (usual education requirement on EDU_SCORE's scale, female affinity, age profile,
# trend direction). Signs and rough sizes from US labour-market history, scaled by DynamicsConfig.
CLUSTER_PROFILE: dict[str, tuple[float, float, float, float]] = {
    "executive_administrative_managerial": (3.4, 0.0, 0.6, 0.5),
    "professional_specialty": (4.3, 0.4, 0.2, 1.0),
    "technicians": (2.6, 0.0, -0.1, 0.3),
    "sales": (1.4, 0.2, -0.3, 0.0),
    "administrative_support": (1.3, 1.2, 0.0, -0.4),
    "private_household": (0.2, 1.5, 0.1, -0.5),
    "protective_service": (1.4, -1.0, 0.0, 0.3),
    "other_service": (0.5, 0.6, -0.5, 0.5),
    "farming_forestry_fishing": (0.3, -1.0, 0.2, -0.5),
    "precision_production_craft_repair": (1.0, -1.5, 0.2, -0.7),
    "machine_operators_assemblers_inspectors": (0.6, -0.3, 0.0, -1.0),
    "transportation_material_moving": (0.7, -1.5, 0.1, -0.5),
    "handlers_cleaners_helpers_laborers": (0.3, -1.0, -0.5, -0.5),
    "military": (1.2, -2.0, -1.2, -0.5),
}
MILITARY_WEIGHT = 0.006  # employment share given to code 905 (the 2010 weights have none for the military)
NEIGHBOUR_REACH = 2  # codes within this many places in the same cluster are "neighbours"


@dataclass(frozen=True)
class Market:
    """All parameters of the labour market (arrays are read-only after construction)."""

    K: int
    Z: int
    C: int
    kind_of: IntArray  # [K] nest of each state (WORK for working codes)
    special: BoolArray  # [K]
    state_of_nest: IntArray  # [NESTS] state index of each special nest (-1 for WORK)
    cluster_of: IntArray  # [K] cluster of each working code (0 for special states; never used for them)
    edu_fit: FloatArray  # [NUM_EDU + 1, K] education fit by level (last row: not recorded)
    # Logit tables in the linear domain (exp), so that a step multiplies instead of exponentiating:
    exp_base_fit: FloatArray  # [NUM_EDU + 1, K] exp(log employment share + edu_fit); 0 for special states
    exp_related: FloatArray  # [K + 1, K] exp(relatedness of a move from an anchor job); last row: no anchor
    exp_type_cluster: FloatArray  # [Z, C]
    exp_type_fav: FloatArray  # [Z, K]
    run_start: IntArray  # [R] first index of each run of consecutive working codes in one cluster
    run_cluster: FloatArray  # [R, C] cluster of each run (one-hot), to sum per-run totals into clusters
    stay_cluster: FloatArray  # [C]
    gender_cluster: FloatArray  # [3, C]
    race_cluster: FloatArray  # [RACE_MISSING + 1, C]
    region_cluster: FloatArray  # [REGION_MISSING + 1, C]
    age_cluster: FloatArray  # [C] per decade of age around 35
    trend_cluster: FloatArray  # [C] per decade after 2000
    type_cluster: FloatArray  # [Z, C] V
    type_fav: FloatArray  # [Z, K] F (dense, mostly zero)
    fav_index: IntArray  # [Z, F] favourite codes of each type
    fav_bonus: FloatArray  # [Z, F] their bonuses
    type_nest: FloatArray  # [Z, NESTS] type effects on the nest choice (0 for WORK)
    type_stay: FloatArray  # [Z, NESTS] type effects on staying, by the current state's nest
    type_edu: FloatArray  # [Z] education propensity
    type_manual: FloatArray  # [Z] 1 if the type's main cluster is manual labour
    type_wage: FloatArray  # [Z] standard-normal wage levels (scaled by WageConfig)
    prior_gender: FloatArray  # [3, Z]
    prior_race: FloatArray  # [RACE_MISSING + 1, Z]
    prior_region: FloatArray  # [REGION_MISSING + 1, Z]
    prior_cohort: FloatArray  # [Z] per decade of birth after 1970
    neighbours: IntArray  # [K, 2 * NEIGHBOUR_REACH] neighbouring codes (-1 padded)
    neighbour_count: IntArray  # [K]
    sources: IntArray  # [K, 2 * NEIGHBOUR_REACH] codes x that have this code as a neighbour (-1 padded)
    source_weight: FloatArray  # [K, 2 * NEIGHBOUR_REACH] 1 / neighbour_count[x]
    wage_occ: FloatArray  # [K] standard-normal occupation wage effects
    requirement_cluster: FloatArray  # [C] usual education requirement per cluster (wage means)
    recession: FloatArray  # [YEAR_RANGE span] recession bump per calendar year
    dyn: DynamicsConfig


@functools.lru_cache(maxsize=4)
def build_market(dyn: DynamicsConfig, market_seed: int) -> Market:
    """The market's parameters: a pure function of the dynamics config and ``market_seed`` (cached per process)."""
    tax = Taxonomy.default()
    rng = np.random.default_rng(np.random.SeedSequence([market_seed, 0x6D61726B]))  # "mark"
    occs = tax.occupations
    K, Z = len(occs), dyn.num_types
    special = np.array([o.special for o in occs])
    working = [o for o in occs if not o.special]
    names = list(dict.fromkeys(o.subgroup for o in working))
    unknown = [c for c in names if c not in CLUSTER_PROFILE]
    if unknown:
        raise ValueError(f"no synthetic profile for occupation group(s) {unknown}")
    C = len(names)
    cluster_of = np.array([names.index(o.subgroup) if not o.special else 0 for o in occs])
    kind_of = np.array([SPECIAL_KINDS.get(o.code, WORK) for o in occs])
    state_of_nest = np.full(NESTS, -1, dtype=np.int64)
    for k in np.flatnonzero(special):
        state_of_nest[kind_of[k]] = k
    onehot = np.zeros((K, C))
    onehot[np.flatnonzero(~special), cluster_of[~special]] = 1.0
    broad = np.array([tax.groups.index(o.group) for o in occs])
    profile = np.array([CLUSTER_PROFILE[c] for c in names])  # [C, 4]
    work_idx = np.flatnonzero(~special)

    # Base rates: real 2010 employment shares (the military gets a share of its own).
    weight = np.array([o.employment_weight if o.code != "905" else MILITARY_WEIGHT for o in occs])
    weight[special] = 0.0
    weight /= weight.sum()
    base = np.zeros(K)
    base[~special] = np.log(weight[~special])
    cluster_share = onehot.T @ weight  # [C]

    # Education requirement per code: its cluster's usual level plus code-level variation. The fit penalises
    # being under-qualified strongly and over-qualified mildly.
    requirement = np.zeros(K)
    requirement[~special] = np.clip(
        profile[cluster_of[~special], 0] + rng.normal(0.0, 0.6, len(work_idx)), 0.0, 6.0
    )
    surplus = EDU_SCORE[:, None] - requirement[None, :]  # [NUM_EDU, K]
    fit = -dyn.education_under * np.maximum(-surplus, 0.0) - dyn.education_over * np.maximum(
        surplus - 1.5, 0.0
    )
    fit[:, special] = 0.0
    # "Not recorded": the fit of an average worker (log-mean-exp over a typical composition of levels).
    typical = np.array([0.1, 0.3, 0.2, 0.08, 0.2, 0.08, 0.02, 0.02])
    edu_fit = np.vstack([fit, np.log(typical @ np.exp(fit))[None, :]])

    # Relatedness of a move to j from the anchor job a: same cluster, same broad group, neighbouring codes,
    # and a market-wide career ladder (a few successors per code, in any group, drawn by employment share).
    neighbours = np.full((K, 2 * NEIGHBOUR_REACH), -1, dtype=np.int64)
    for c in range(C):
        members = np.flatnonzero((cluster_of == c) & ~special)  # in code order
        for pos, k in enumerate(members):
            near = [
                members[p]
                for p in range(pos - NEIGHBOUR_REACH, pos + NEIGHBOUR_REACH + 1)
                if p != pos and 0 <= p < len(members)
            ]
            neighbours[k, : len(near)] = near
    neighbour_count = (neighbours >= 0).sum(axis=1)
    related = np.zeros((K + 1, K))
    same_cluster = (cluster_of[work_idx][:, None] == cluster_of[None, :]) & ~special[None, :]
    same_broad = (broad[work_idx][:, None] == broad[None, :]) & ~special[None, :]
    related[work_idx] = dyn.related_subgroup * same_cluster + dyn.related_group * (same_broad & ~same_cluster)
    ladder_p = np.sqrt(weight)
    for k in work_idx:
        related[k, neighbours[k][neighbours[k] >= 0]] += dyn.related_neighbour
        if dyn.ladder_size:
            p = ladder_p * (np.arange(K) != k)
            succ = rng.choice(K, size=dyn.ladder_size, replace=False, p=p / p.sum())
            related[k, succ] += dyn.ladder_bonus * rng.uniform(0.5, 1.5, dyn.ladder_size)
    related[np.arange(K), np.arange(K)] = 0.0  # the current code is excluded anyway

    # Inverse neighbour lists for the recording noise: which true codes x can be recorded as y.
    sources = np.full((K, 2 * NEIGHBOUR_REACH), -1, dtype=np.int64)
    source_weight = np.zeros((K, 2 * NEIGHBOUR_REACH))
    filled = np.zeros(K, dtype=np.int64)
    for x in work_idx:
        for y in neighbours[x][neighbours[x] >= 0]:
            sources[y, filled[y]] = x
            source_weight[y, filled[y]] = 1.0 / neighbour_count[x]
            filled[y] += 1

    # Covariate effects by cluster ("not recorded" rows are zero).
    female = dyn.gender_effect * profile[:, 1] / 2.0
    gender_cluster = np.stack([female, -female, np.zeros(C)])
    race_cluster = np.vstack([rng.normal(0.0, dyn.race_sd, (len(RACES), C)), np.zeros((1, C))])
    region_cluster = np.vstack([rng.normal(0.0, dyn.region_sd, (len(REGIONS), C)), np.zeros((1, C))])

    # Latent types: a main and a second cluster (drawn by employment share, so types cover the economy),
    # noisy preferences elsewhere, a few favourite codes, and propensities for the other nests and staying.
    p_main = cluster_share**0.7 / (cluster_share**0.7).sum()
    main = rng.choice(C, size=Z, p=p_main)
    second = np.array([rng.choice(C, p=_without(p_main, m)) for m in main])
    v = rng.normal(0.0, dyn.type_spread, (Z, C))
    v[np.arange(Z), main] += dyn.type_primary
    v[np.arange(Z), second] += dyn.type_secondary
    # Centre each type so its total pull towards work is that of the market (types differ in *where* they
    # work; how much they work is up to the nest effects below).
    type_cluster = v - np.log(np.exp(v) @ cluster_share)[:, None]
    type_edu = 0.8 * (profile[main, 0] - 2.0) + rng.normal(0.0, 0.5, Z)
    type_nest = np.zeros((Z, NESTS))
    type_nest[:, UNEMP] = rng.normal(0.0, dyn.type_unemployment_sd, Z)
    type_nest[:, OLF] = rng.normal(0.0, dyn.type_olf_sd, Z)
    type_nest[:, SCHOOL] = dyn.type_school * type_edu
    type_stay = np.stack(
        [
            rng.normal(0.0, dyn.type_stay_sd, Z),
            0.5 * type_nest[:, UNEMP] + rng.normal(0.0, 0.3, Z),
            0.5 * type_nest[:, OLF] + rng.normal(0.0, 0.3, Z),
            0.5 * type_edu,
        ],
        axis=1,
    )
    F = dyn.favourites
    fav_index = np.zeros((Z, F), dtype=np.int64)
    fav_bonus = dyn.favourite_bonus * rng.uniform(0.6, 1.4, (Z, F))
    type_fav = np.zeros((Z, K))
    for z in range(Z):
        pool = np.flatnonzero(np.isin(cluster_of, (main[z], second[z])) & ~special)
        take = min(F, len(pool))
        fav_index[z, :take] = rng.choice(pool, size=take, replace=False, p=weight[pool] / weight[pool].sum())
        if take < F:  # a tiny pair of clusters: pad with distinct codes from anywhere
            rest = np.setdiff1d(work_idx, fav_index[z, :take])
            fav_index[z, take:] = rng.choice(rest, size=F - take, replace=False)
        type_fav[z, fav_index[z]] = fav_bonus[z]
    manual = {names.index(o.subgroup) for o in working if o.group == MANUAL_GROUP}
    type_manual = np.isin(main, list(manual)).astype(np.float64)

    # Type prior: by gender (consistent with the cluster affinities), race, region and birth cohort; the
    # first recorded education enters in type_log_prior.
    sd = dyn.type_prior_demographics
    g = female[main] + 0.5 * female[second]
    prior_gender = np.stack([g, -g, np.zeros(Z)])
    prior_race = np.vstack([rng.normal(0.0, sd, (len(RACES), Z)), np.zeros((1, Z))])
    prior_region = np.vstack([rng.normal(0.0, sd, (len(REGIONS), Z)), np.zeros((1, Z))])
    # Later cohorts lean towards education-heavy tracks (educational upgrading), plus noise.
    prior_cohort = dyn.type_prior_cohort * type_edu + rng.normal(0.0, sd / 2.0, Z)

    # Clusters are code ranges, but not all contiguous (other service is split by protective service): sum
    # per run of equal clusters, then runs into clusters.
    run_start = np.flatnonzero(np.r_[True, np.diff(cluster_of[work_idx]) != 0]) + work_idx[0]
    run_cluster = np.zeros((len(run_start), C))
    run_cluster[np.arange(len(run_start)), cluster_of[run_start]] = 1.0
    exp_base_fit = np.exp(base[None, :] + edu_fit)
    exp_base_fit[:, special] = 0.0

    market = Market(
        K=K,
        Z=Z,
        C=C,
        kind_of=kind_of,
        special=special,
        state_of_nest=state_of_nest,
        cluster_of=cluster_of,
        edu_fit=edu_fit,
        exp_base_fit=exp_base_fit,
        exp_related=np.exp(related),
        exp_type_cluster=np.exp(type_cluster),
        exp_type_fav=np.exp(type_fav),
        run_start=run_start,
        run_cluster=run_cluster,
        stay_cluster=rng.normal(0.0, dyn.stay_cluster_sd, C),
        gender_cluster=gender_cluster,
        race_cluster=race_cluster,
        region_cluster=region_cluster,
        age_cluster=dyn.age_effect * profile[:, 2],
        trend_cluster=dyn.trend * profile[:, 3],
        type_cluster=type_cluster,
        type_fav=type_fav,
        fav_index=fav_index,
        fav_bonus=fav_bonus,
        type_nest=type_nest,
        type_stay=type_stay,
        type_edu=type_edu,
        type_manual=type_manual,
        type_wage=rng.normal(0.0, 1.0, Z),
        prior_gender=prior_gender,
        prior_race=prior_race,
        prior_region=prior_region,
        prior_cohort=prior_cohort,
        neighbours=neighbours,
        neighbour_count=neighbour_count,
        sources=sources,
        source_weight=source_weight,
        wage_occ=rng.normal(0.0, 1.0, K),
        requirement_cluster=profile[:, 0].copy(),
        recession=np.array([RECESSION.get(y, 0.0) for y in range(YEAR_RANGE[0], YEAR_RANGE[1] + 1)]),
        dyn=dyn,
    )
    for arr in vars(market).values():
        if isinstance(arr, np.ndarray):
            arr.setflags(write=False)
    logger.debug("built market: K=%d C=%d Z=%d (seed %d)", K, C, Z, market_seed)
    return market


def _without(p: FloatArray, i: int) -> FloatArray:
    q = p.copy()
    q[i] = 0.0
    out: FloatArray = q / q.sum()
    return out


# --- one step ----------------------------------------------------------------------------------------------


@dataclass
class StepInputs:
    """What one step conditions on, for ``n`` people at once: recorded history and covariates only.

    ``cur`` is -1 at the first observation. ``anchor`` is the last working code recorded (``K`` if none): the
    relatedness of a move is measured from it, also after a spell out of work.
    """

    year: IntArray  # [n]
    age: FloatArray  # [n]
    gap: IntArray  # [n] years since the previous observation (0 at the first)
    edu: IntArray  # [n] education index at this step (EDU_MISSING if not recorded)
    gender: IntArray  # [n]
    race: IntArray  # [n]
    region: IntArray  # [n]
    cur: IntArray  # [n] previous recorded state, -1 at the first observation
    anchor: IntArray  # [n] last recorded working code, K if none
    tenure: FloatArray  # [n] years in the current state up to the previous observation
    returns: FloatArray  # [n, K] exp(return_bonus) for codes held earlier, 1 otherwise

    def __len__(self) -> int:
        return len(self.year)


@dataclass(frozen=True)
class StepModel:
    """The step's conditional distribution for ``n`` people, per type, in factorised form."""

    w: FloatArray  # [n, K] exp(A): type-free work weights; 0 for special states and the current code
    log_norm: FloatArray  # [n, Z] log N_z, the within-work normaliser
    log_nest: FloatArray  # [n, Z, NESTS] log P(nest | move, z); -inf for excluded nests
    log_stay: FloatArray  # [n, Z] log sigmoid(eta_z); -inf at the first observation
    log_move: FloatArray  # [n, Z] log (1 - sigmoid(eta_z))
    cur: IntArray  # [n]


def _age_factor(age: FloatArray) -> FloatArray:
    """Decades from 35, clipped: the age profile of clusters and of staying."""
    return np.clip((age - 35.0) / 10.0, -2.0, 3.0)


def _score(edu: IntArray) -> FloatArray:
    return np.where(edu == EDU_MISSING, MISSING_SCORE, EDU_SCORE[np.minimum(edu, NUM_EDU - 1)])


def logsumexp(v: FloatArray, axis: int) -> FloatArray:
    """log(sum(exp(v))) along ``axis`` (kept), -inf where every entry is -inf."""
    mx = v.max(axis=axis, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        out: FloatArray = np.log(np.exp(v - mx).sum(axis=axis, keepdims=True)) + mx
    return out


def _log_sigmoid(v: FloatArray) -> FloatArray:
    """log(sigmoid(v)) = -softplus(-v), stable and exact at +-inf."""
    return -(np.maximum(-v, 0.0) + np.log1p(np.exp(-np.abs(v))))


def work_weights(m: Market, x: StepInputs) -> FloatArray:
    """Type-free work weights ``exp(A)``: ``[n, K]``, 0 for special states and the current code.

    ``A_j = base_j + fit(edu, j) + related(anchor, j) + covariates(cluster(j)) + returns_j``, plus the pull of
    the last job after a spell out of work; computed as a product of precomputed exponentials.
    """
    n = len(x)
    rows = np.arange(n)
    # Covariate effects by cluster: demographics, age profile, year trend.
    cov = m.gender_cluster[x.gender] + m.race_cluster[x.race] + m.region_cluster[x.region]
    cov += (
        _age_factor(x.age)[:, None] * m.age_cluster[None, :]
        + ((x.year - 2000) / 10.0)[:, None] * m.trend_cluster[None, :]
    )
    w = m.exp_base_fit[x.edu] * m.exp_related[x.anchor] * np.exp(cov)[:, m.cluster_of] * x.returns
    back = (x.cur >= 0) & (x.anchor < m.K)
    back[back] = m.special[x.cur[back]]
    w[rows[back], x.anchor[back]] *= np.exp(m.dyn.last_job_bonus)
    has_cur = x.cur >= 0
    w[rows[has_cur], x.cur[has_cur]] = 0.0
    return w


def nest_logits(m: Market, x: StepInputs, allow_special: bool) -> FloatArray:
    """log P(nest | move, type): ``[n, Z, NESTS]``. Logits are relative to work (0).

    Unemployment: the business cycle, less for the educated, more for the young. Out of the labour force:
    more for women, retirement past 58. School: teenagers are pulled in, it fades after 22, and people without
    a high-school diploma at 20+ rarely go back. The current special state's nest is excluded (staying is
    the stay stage's business).
    """
    dyn = m.dyn
    n = len(x)
    score = _score(x.edu)
    b = np.zeros((n, NESTS))
    b[:, UNEMP] = (
        dyn.unemployment_base
        + dyn.recession * m.recession[np.clip(x.year, *YEAR_RANGE) - YEAR_RANGE[0]]
        - 0.25 * score
        + 0.3 * np.maximum(25.0 - x.age, 0.0) / 5.0
    )
    b[:, OLF] = (
        dyn.olf_base
        + 0.7 * (x.gender == 0)
        + dyn.retirement * np.maximum(x.age - 58.0, 0.0)
        - 0.1 * score
        - 0.2 * np.maximum(30.0 - x.age, 0.0) / 5.0
    )
    b[:, SCHOOL] = (
        dyn.school_base
        + dyn.school_age * np.maximum(19.0 - x.age, 0.0)
        - 0.45 * np.maximum(x.age - 22.0, 0.0)
        + 1.2 * ((x.edu >= 1) & (x.edu <= 4) & (x.age <= 24))
        - 1.5 * ((x.edu == 0) & (x.age >= 20))
    )
    logits = b[:, None, :] + m.type_nest[None, :, :]  # [n, Z, NESTS]
    if not allow_special:
        logits[:, :, 1:] = -np.inf
    in_special = x.cur >= 0
    in_special[in_special] = m.special[x.cur[in_special]]
    logits[np.flatnonzero(in_special), :, m.kind_of[x.cur[in_special]]] = -np.inf
    return logits - logsumexp(logits, axis=2)


def stay_logits(m: Market, x: StepInputs) -> FloatArray:
    """Stay logit per type: ``[n, Z]``; ``-inf`` at the first observation (no current state to stay in)."""
    dyn = m.dyn
    has_cur = x.cur >= 0
    cur = np.where(has_cur, x.cur, 0)
    kind = m.kind_of[cur]
    agef = _age_factor(x.age)
    gap_term = dyn.stay_gap * np.maximum(x.gap - 1, 0)
    tenure_term = dyn.stay_tenure * np.log1p(x.tenure)
    eta = np.select(
        [kind == WORK, kind == UNEMP, kind == OLF],
        [
            dyn.stay_base
            + m.stay_cluster[m.cluster_of[cur]]
            + dyn.stay_age * agef
            + dyn.stay_fit * m.edu_fit[x.edu, cur]
            + tenure_term
            + gap_term,
            dyn.unemployed_stay + 0.2 * agef + gap_term,
            dyn.olf_stay + 0.4 * agef + dyn.retirement * np.maximum(x.age - 58.0, 0.0) + 0.5 * tenure_term,
        ],
        # In school: near-certain for teenagers, fading after 22.
        default=dyn.school_stay
        + 1.5 * np.maximum(19.0 - x.age, 0.0)
        - 0.5 * np.maximum(x.age - 22.0, 0.0)
        + gap_term,
    )
    out = eta[:, None] + m.type_stay[:, kind].T
    out[~has_cur] = -np.inf
    return out


def log_normaliser(m: Market, w: FloatArray) -> FloatArray:
    """``log N_z = log sum_j exp(A_j + V[z, c(j)] + F[z, j])`` over working codes, factorised: ``[n, Z]``.

    Step by step: (1) ``S_c = sum_{j in c} exp(A_j)``, summing runs of consecutive codes of one cluster and
    then runs into clusters; (2) mix clusters with each type's ``exp(V[z, c])``; (3) add each type's favourite
    codes' extra mass ``exp(A_f + V[z, c(f)]) * (exp(F[z, f]) - 1)``; (4) back to logs.
    """
    s = np.add.reduceat(w, m.run_start, axis=1) @ m.run_cluster  # (1) [n, C]
    total = s @ m.exp_type_cluster.T  # (2) [n, Z]
    coef = m.exp_type_cluster[np.arange(m.Z)[:, None], m.cluster_of[m.fav_index]] * np.expm1(
        m.fav_bonus
    )  # [Z, F]
    fav = np.take(w, m.fav_index.ravel(), axis=1).reshape(len(w), *m.fav_index.shape)  # [n, Z, F]
    total += (fav * coef[None]).sum(axis=2)  # (3)
    return np.log(total)  # (4)


def step_model(m: Market, x: StepInputs, allow_special: bool) -> StepModel:
    """Everything the step's probabilities need, computed once and shared by sampler and oracle."""
    w = work_weights(m, x)
    stay = stay_logits(m, x)
    return StepModel(
        w=w,
        log_norm=log_normaliser(m, w),
        log_nest=nest_logits(m, x, allow_special),
        log_stay=_log_sigmoid(stay),
        log_move=_log_sigmoid(-stay),
        cur=x.cur,
    )


def _log_p_true(m: Market, sm: StepModel, state: IntArray) -> FloatArray:
    """log P(true state | type) for candidate states ``[n, c]`` (-1 = none): ``[n, c, Z]``."""
    rows = np.arange(len(state))[:, None]
    safe = np.maximum(state, 0)
    kind = m.kind_of[safe]  # [n, c]
    with np.errstate(divide="ignore"):
        log_w = np.log(sm.w[rows, safe])  # [n, c]; -inf at the current code and special states
    # Move to a working code: P(move) P(work nest) exp(A_j + V[z, c(j)] + F[z, j]) / N_z.
    work = (
        log_w[:, :, None]
        + m.type_cluster.T[m.cluster_of[safe]]
        + m.type_fav.T[safe]
        - sm.log_norm[:, None, :]
        + sm.log_nest[:, None, :, WORK]
    )
    # Move to a special state: P(move) P(its nest).
    nest = np.take_along_axis(sm.log_nest, kind[:, None, :], axis=2).transpose(0, 2, 1)  # [n, c, Z]
    out = sm.log_move[:, None, :] + np.where((kind == WORK)[:, :, None], work, nest)
    # Stay: sigmoid(eta_z) when the candidate is the current state.
    out = np.where((state == sm.cur[:, None])[:, :, None], sm.log_stay[:, None, :], out)
    out[state < 0] = -np.inf
    return out


def log_prob_given_type(m: Market, sm: StepModel, y: IntArray, noise: float) -> FloatArray:
    """log p(recorded y | type, history, covariates): ``[n, Z]``, the oracle's per-type likelihood.

    With recording noise, ``p(y | z) = sum_x P(x | z) N(y | x)``: the true state ``x`` is ``y`` itself (kept
    with ``1 - noise`` if ``y`` has neighbours, else always) or a code ``y`` neighbours (swapped into ``y``
    with ``noise / #neighbours(x)``).
    """
    keep = np.where(m.neighbour_count[y] > 0, 1.0 - noise, 1.0)[:, None]  # [n, 1]
    if noise <= 0.0:
        return _log_p_true(m, sm, y[:, None])[:, 0, :]
    cand = np.concatenate([y[:, None], m.sources[y]], axis=1)  # [n, 1 + sources]
    weight = np.concatenate([keep, noise * m.source_weight[y]], axis=1)
    with np.errstate(divide="ignore"):
        terms = np.log(weight)[:, :, None] + _log_p_true(m, sm, cand)  # [n, c, Z]
    return logsumexp(terms, axis=1)[:, 0, :]


def next_state_log_probs(m: Market, sm: StepModel, log_post: FloatArray, noise: float) -> FloatArray:
    """log p(recorded next state | history): the oracle's whole distribution over all ``K`` states, ``[n, K]``.

    The type posterior ``log_post`` (``[n, Z]``, normalised) is mixed in *before* the recording noise, since
    both are linear in the true-state probabilities; that keeps the cost at ``O(n Z K)`` (one ``[n, Z] @
    [Z, K]`` product) instead of the ``O(n Z K^2)`` of ``dense_log_probs``, so whole test splits can be scored:

    - working codes: ``w_j * sum_z c_z exp(V[z, c(j)] + F[z, j])`` with ``c_z = p(z) P(move | z) P(work | z) / N_z``;
    - special states: ``sum_z p(z) P(move | z) P(nest | z)``; the current state also gets ``sum_z p(z) P(stay | z)``;
    - recording: ``p(y) = keep(y) p_true(y) + noise * sum_{x: y neighbours x} p_true(x) / #neighbours(x)``.

    States the process cannot produce (special states without ``special_states``, the current special
    state's own nest when moving) get probability 0, i.e. ``-inf``. Sums in the linear domain are relatively
    exact; the tests compare the result with ``dense_log_probs`` and with ``log_prob_given_type``.
    """
    post = np.exp(log_post)  # [n, Z]
    mix_work = np.exp(log_post + sm.log_move + sm.log_nest[:, :, WORK] - sm.log_norm)  # [n, Z] c_z
    type_code = m.exp_type_cluster[:, m.cluster_of] * m.exp_type_fav  # [Z, K] exp(V[z, c(j)] + F[z, j])
    p = sm.w * (mix_work @ type_code)  # [n, K]; 0 at special states and the current code
    nest = (post[:, :, None] * np.exp(sm.log_move[:, :, None] + sm.log_nest)).sum(axis=1)  # [n, NESTS]
    for kind in (UNEMP, OLF, SCHOOL):
        p[:, m.state_of_nest[kind]] = nest[:, kind]
    has_cur = np.flatnonzero(sm.cur >= 0)
    p[has_cur, sm.cur[has_cur]] += (post[has_cur] * np.exp(sm.log_stay[has_cur])).sum(axis=1)
    if noise > 0.0:
        recorded = p * np.where(m.neighbour_count > 0, 1.0 - noise, 1.0)[None, :]
        for slot in range(m.sources.shape[1]):  # a few [n, K] gathers; padded slots have weight 0
            recorded += np.take(p, np.maximum(m.sources[:, slot], 0), axis=1) * (
                noise * m.source_weight[:, slot]
            )
        p = recorded
    with np.errstate(divide="ignore"):
        out: FloatArray = np.log(p)
    return out


def dense_log_probs(m: Market, sm: StepModel, noise: float) -> FloatArray:
    """The full recorded-state distribution per type, computed the direct way: ``[n, Z, K]``.

    For checks (each row sums to 1; it agrees with ``log_prob_given_type`` and, mixed over a posterior, with
    ``next_state_log_probs`` everywhere) and small runs only.
    """
    n = len(sm.w)
    with np.errstate(divide="ignore"):
        logits = (
            np.log(sm.w)[:, None, :] + m.type_cluster[:, m.cluster_of][None, :, :] + m.type_fav[None, :, :]
        )
    within = logits - logsumexp(logits, axis=2)  # [n, Z, K] softmax over allowed working codes
    p = np.exp(sm.log_move[:, :, None] + sm.log_nest[:, :, WORK : WORK + 1] + within)  # move to work
    for nest in (UNEMP, OLF, SCHOOL):
        p[:, :, m.state_of_nest[nest]] = np.exp(sm.log_move + sm.log_nest[:, :, nest])
    has_cur = sm.cur >= 0
    p[has_cur, :, sm.cur[has_cur]] += np.exp(sm.log_stay[has_cur])
    noise_matrix = np.eye(m.K)
    for x in range(m.K):
        nb = m.neighbours[x][m.neighbours[x] >= 0]
        if len(nb) and noise > 0:
            noise_matrix[x, x] = 1.0 - noise
            noise_matrix[x, nb] += noise / len(nb)
    with np.errstate(divide="ignore"):
        return np.log(p.reshape(n * m.Z, m.K) @ noise_matrix).reshape(n, m.Z, m.K)


def _draw(weights: FloatArray, rng: np.random.Generator) -> IntArray:
    """One categorical draw per row of non-negative weights ``[n, k]`` (inverse CDF)."""
    c = np.cumsum(weights, axis=1)
    u = (1.0 - rng.random(len(weights))) * c[:, -1]  # in (0, total]: never lands on a zero-weight entry
    out: IntArray = (c < u[:, None]).sum(axis=1)
    return out


def sample_state(m: Market, sm: StepModel, z: IntArray, rng: np.random.Generator) -> IntArray:
    """Draw the true next state of each person given their (sampled) type: ``[n]``."""
    rows = np.arange(len(z))
    stays = rng.random(len(z)) < np.exp(sm.log_stay[rows, z])
    out = np.where(stays, sm.cur, -1)
    mv = np.flatnonzero(~stays)
    nest = _draw(np.exp(sm.log_nest[mv, z[mv]]), rng)
    special = nest != WORK
    out[mv[special]] = m.state_of_nest[nest[special]]
    wk = mv[~special]
    if len(wk):
        # exp(A_j + V[z, c(j)] + F[z, j]) for the person's type, as a product.
        out[wk] = _draw(sm.w[wk] * m.exp_type_cluster[z[wk]][:, m.cluster_of] * m.exp_type_fav[z[wk]], rng)
    return out


def record_states(m: Market, x: IntArray, noise: float, rng: np.random.Generator) -> IntArray:
    """Recording noise: swap a working code for a uniform neighbour with probability ``noise``: ``[n]``."""
    if noise <= 0.0:
        return x
    count = m.neighbour_count[x]
    swap = (rng.random(len(x)) < noise) & (count > 0)
    pick = np.floor(rng.random(len(x)) * np.maximum(count, 1)).astype(np.int64)
    return np.where(swap, m.neighbours[x, pick], x)


# --- education and the type prior --------------------------------------------------------------------------


def education_rise_prob(
    m: Market, edu: IntArray, prev: IntArray, age: FloatArray, gap: IntArray, birth_year: IntArray
) -> FloatArray:
    """Probability that education rises one level by this observation, per type: ``[n, Z]``.

    Yearly hazard ``h = sigmoid(base[level] + rate + cohort * decades of birth after 1970 + type * type_edu[z]
    + school * [was in school] - decay * years past the usual age of the next level)``; zero more than a year
    before that age, at a terminal level or when education is not recorded. Over a gap of ``g`` years:
    ``1 - (1 - h)^g``. ``birth_year`` is -1 where unknown (no cohort term).
    """
    dyn = m.dyn
    lvl = np.minimum(edu, NUM_EDU - 1)
    usual = NEXT_LEVEL_AGE[lvl]
    in_school = (prev >= 0) & (m.kind_of[np.maximum(prev, 0)] == SCHOOL)
    possible = (edu != EDU_MISSING) & np.isfinite(usual) & (age >= usual - 1.0)
    cohort = np.where(birth_year > 0, (birth_year - 1970) / 10.0, 0.0)
    logit = np.where(
        possible,
        EDU_RISE_BASE[lvl]
        + dyn.education_rate
        + dyn.education_cohort * cohort
        + dyn.education_school * in_school
        - dyn.education_age_decay * np.maximum(age - np.where(possible, usual, 0.0), 0.0),
        0.0,
    )
    h = 1.0 / (1.0 + np.exp(-(logit[:, None] + dyn.education_type * m.type_edu[None, :])))
    return np.where(possible[:, None], 1.0 - (1.0 - h) ** np.maximum(gap, 1)[:, None], 0.0)


def education_log_lik(rise_prob: FloatArray, edu_prev: IntArray, edu_now: IntArray) -> FloatArray:
    """log P(edu_now | edu_prev, type), up to a type-free constant (which level a rise leads to): ``[n, Z]``."""
    rose = edu_now != edu_prev
    with np.errstate(divide="ignore"):
        return np.where(rose[:, None], np.log(rise_prob), np.log1p(-rise_prob))


def sample_education(
    m: Market, rise_prob: FloatArray, edu: IntArray, z: IntArray, rng: np.random.Generator
) -> IntArray:
    """Draw this step's education given the type: a rise with ``rise_prob[z]``, to a level from EDU_NEXT."""
    n = len(edu)
    rise = rng.random(n) < rise_prob[np.arange(n), z]
    cdf = np.cumsum(EDU_NEXT[np.minimum(edu, NUM_EDU - 1)], axis=1)
    nxt = np.minimum((cdf < rng.random(n)[:, None]).sum(axis=1), NUM_EDU - 1)
    return np.where(rise, nxt, edu)


def type_log_prior(
    m: Market,
    gender: IntArray,
    race: IntArray,
    region: IntArray,
    birth_year: IntArray,
    age: FloatArray,
    edu: IntArray,
    education_tilt: float,
    manual_tilt: float,
) -> FloatArray:
    """log p(type | static covariates, first recorded education and age): ``[n, Z]``, normalised.

    ``birth_year`` is -1 where unknown (no cohort effect). The first education speaks about the type in
    proportion to how settled it is: not at all at 18, fully from 25. The tilts are the population's
    selection on types (resume writers are more often on college tracks, less often on manual ones), not
    part of the market.
    """
    dyn = m.dyn
    cohort = np.where(birth_year > 0, (birth_year - 1970) / 10.0, 0.0)
    settled = np.clip((age - 18.0) / 7.0, 0.0, 1.0)
    score = np.where(edu == EDU_MISSING, 0.0, settled * (_score(edu) - MISSING_SCORE))
    logits = (
        m.prior_gender[gender]
        + m.prior_race[race]
        + m.prior_region[region]
        + cohort[:, None] * m.prior_cohort[None, :]
        + dyn.type_prior_education * score[:, None] * m.type_edu[None, :]
        + education_tilt * m.type_edu[None, :]
        - manual_tilt * m.type_manual[None, :]
    )
    return logits - logsumexp(logits, axis=1)
