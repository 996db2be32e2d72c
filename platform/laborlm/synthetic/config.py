"""Configuration of the synthetic labour market: frozen dataclasses, four presets, and their checks.

    laborlm data synth --preset psid --out runs/psid
    laborlm data synth --config jobs/synth_resumes.yaml --out runs/resumes dynamics.num_types=16

A ``SynthConfig`` has three kinds of knobs, kept apart on purpose:

- ``dynamics`` (and ``market_seed``): the labour market itself (occupational mobility, latent worker types,
  education, covariate effects). Every preset shares the same defaults and the same ``market_seed``, so the
  resume corpus and the surveys follow *one* set of career dynamics; that is what makes pretraining on
  resumes worthwhile.
- ``population`` and ``grid``: who is sampled and when they are observed (birth cohorts, demographics,
  education composition, selection into the corpus, survey waves, attrition). These differ by preset.
- ``recording``: what the dataset records (special states, demographics, education, coding noise).

The dataclass defaults are the PSID preset, so ``SynthConfig()`` is a valid, runnable configuration.

``generate_panel`` records the resolved config as ``synth.yaml`` in the panel folder (``write_synth_config``):
the data then carry the exact parameters of their generator, and ``load_synth_config`` gives the oracle back
(``laborlm.synthetic.oracle.OracleModel.from_panel``) without the caller having to remember presets,
overrides and seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from laborlm.config import build, dump_yaml, load_yaml
from laborlm.errors import ConfigError
from laborlm.readers.layout import SYNTH_CONFIG_FILE
from laborlm.schema import EDUCATION_LEVELS, RACES, REGIONS, SOURCE_PATTERN

CONFIG_KIND = "synth"  # the ``kind`` of a synth job YAML and of a panel's synth.yaml

PRESETS: tuple[str, ...] = ("psid", "nlsy79", "nlsy97", "resumes")


@dataclass(frozen=True)
class PopulationConfig:
    """Who is sampled: static covariates, initial education, and selection on latent worker types."""

    birth_years: tuple[int, int] | None = (
        1942,
        1995,
    )  # inclusive; None = not recorded (resumes: age is proxied)
    proxy_start_age: int = 22  # age assumed at the first observation when birth years are not recorded
    female_share: float = 0.52
    race_shares: tuple[float, ...] = (0.58, 0.30, 0.06, 0.02, 0.01, 0.03)  # in schema.RACES order
    region_shares: tuple[float, ...] = (0.16, 0.22, 0.42, 0.20)  # in schema.REGIONS order
    # Initial education: logits over schema.EDUCATION_LEVELS among the levels reachable at the first observed
    # age (nobody holds a degree before the age it normally takes). Adult US composition by default.
    education_logits: tuple[float, ...] = (-0.2, 1.2, 0.4, -0.4, 0.6, -0.3, -2.3, -2.3)
    education_tilt: float = 0.0  # added per education-score unit to those logits (> 0: more educated sample)
    type_education_tilt: float = 0.0  # selection on latent types with a high education propensity
    type_manual_tilt: float = 0.0  # selection against types whose main cluster is manual labour (703-889)

    def __post_init__(self) -> None:
        problems = []
        if self.birth_years is not None and (
            len(self.birth_years) != 2 or self.birth_years[0] > self.birth_years[1]
        ):
            problems.append(
                f"birth_years: expected [first, last] with first <= last, got {list(self.birth_years)}"
            )
        if not 0.0 <= self.female_share <= 1.0:
            problems.append(f"female_share: expected a share in [0, 1], got {self.female_share}")
        problems += _shares("race_shares", self.race_shares, len(RACES))
        problems += _shares("region_shares", self.region_shares, len(REGIONS))
        if len(self.education_logits) != len(EDUCATION_LEVELS):
            problems.append(
                f"education_logits: expected {len(EDUCATION_LEVELS)} values (one per level), got {len(self.education_logits)}"
            )
        if not 14 <= self.proxy_start_age <= 40:
            problems.append(f"proxy_start_age: expected an age in 14..40, got {self.proxy_start_age}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class GridConfig:
    """When people are observed. The process steps on this grid: a biennial wave is one step with gap 2."""

    kind: Literal["survey", "resume"] = (
        "survey"  # survey: waves + entry + attrition; resume: start + length + gaps
    )
    first_year: int = 1996  # first wave (survey) / earliest first year (resume)
    last_year: int = 2019  # last wave / latest year
    annual_until: int | None = 1997  # last annual wave; biennial after it; None = annual throughout
    entry_years: tuple[int, int] = (1996, 2013)  # survey: people join in a uniform year of this range
    min_age: int = 18  # survey: first observation at or after this age
    skip: float = 0.04  # per wave (survey) or per year (resume): the year is missing, leaving a larger gap
    attrition: float = 0.10  # survey: per-wave hazard of leaving the panel for good
    start_year_mean: float = 2000.0  # resume: first year ~ Normal(mean, sd), rounded, clipped to the years
    start_year_sd: float = 9.0
    mean_length: float = 12.0  # resume: mean observed years before truncation at last_year
    max_length: int = 45  # resume: hard cap on observed years

    def __post_init__(self) -> None:
        problems = []
        if self.first_year > self.last_year:
            problems.append(f"first_year {self.first_year} is after last_year {self.last_year}")
        if self.annual_until is not None and not self.first_year <= self.annual_until <= self.last_year:
            problems.append(
                f"annual_until: expected a year in [{self.first_year}, {self.last_year}] or null, got {self.annual_until}"
            )
        lo, hi = self.entry_years if len(self.entry_years) == 2 else (0, -1)
        if len(self.entry_years) != 2 or lo > hi or hi > self.last_year:
            problems.append(
                f"entry_years: expected [first, last] within the panel years, got {list(self.entry_years)}"
            )
        for name in ("skip", "attrition"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                problems.append(f"{name}: expected a probability in [0, 1), got {v}")
        if self.mean_length < 1.0 or self.max_length < 1:
            problems.append("mean_length and max_length must be >= 1")
        if self.start_year_sd < 0:
            problems.append(f"start_year_sd: expected >= 0, got {self.start_year_sd}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class RecordingConfig:
    """What the dataset records. The dynamics condition on the *recorded* values, so the oracle stays exact."""

    special_states: bool = (
        True  # False: no unemployed/out-of-labor-force/in-school; moves renormalised over jobs
    )
    demographics: bool = True  # False: gender and race are null (and absent from the process)
    education_missing: float = (
        0.0  # share of people whose education is never recorded ("missing" is its own level)
    )
    code_noise: float = 0.06  # chance a recorded job code is swapped for a neighbouring code of its subgroup

    def __post_init__(self) -> None:
        problems = []
        for name in ("education_missing", "code_noise"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                problems.append(f"{name}: expected a probability in [0, 1], got {v}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class DynamicsConfig:
    """The labour market shared by every preset. Logit-scale effects unless said otherwise."""

    num_types: int = 32  # latent worker types (career tracks); hidden, never written
    type_primary: float = 2.6  # a type's preference for its main occupation cluster (detailed 1990 group)
    type_secondary: float = 1.4  # ... for its second cluster
    type_spread: float = 0.5  # sd of a type's preferences for the other clusters
    favourites: int = 6  # occupations each type especially likes (a sparse, code-level signature)
    favourite_bonus: float = 1.6
    type_stay_sd: float = 0.7  # sd of a type's stay propensity (mobile vs stable careers)
    type_unemployment_sd: float = 0.8  # sd of a type's preference for unemployment
    type_olf_sd: float = 0.8  # sd of a type's preference for being out of the labour force
    type_school: float = 0.9  # weight of a type's education propensity in its preference for school
    type_prior_education: float = 0.6  # how strongly the first recorded education selects types
    type_prior_demographics: float = 0.4  # sd of race/region effects on the type prior (cohort: half of it)
    type_prior_cohort: float = 0.12  # per decade of birth after 1970, times the type's education propensity
    stay_base: float = 0.5  # stay logit of a working person at mean age, tenure 1, annual gap
    stay_tenure: float = 0.45  # per log(1 + years in the current state)
    stay_age: float = 0.35  # per decade of age around 35
    stay_gap: float = -0.55  # per extra year since the previous observation (biennial waves, resume gaps)
    stay_fit: float = 0.25  # times the education fit of the current job (mismatched workers move more)
    stay_cluster_sd: float = 0.3  # sd of cluster effects on staying
    unemployed_stay: float = -0.8  # stay logit when unemployed
    olf_stay: float = 1.0  # stay logit when out of the labour force
    school_stay: float = 1.2  # stay logit when in school at ages 19-22
    unemployment_base: float = -2.6  # when moving: logit of unemployment against work (0), before covariates
    olf_base: float = -2.9  # ... of leaving the labour force
    school_base: float = -1.5  # ... of (re)entering school, before the age schedule
    school_age: float = 1.3  # per year of age below 19: pulls teenagers into school
    retirement: float = 0.45  # per year of age above 58, towards out of the labour force
    recession: float = 0.8  # unemployment logit bump in recession years (1980-83, 1990-92, 2001-03, 2008-11)
    related_subgroup: float = 1.3  # move to the same detailed group (cluster) as the current job
    related_group: float = 0.5  # move to the same broad group, other cluster
    related_neighbour: float = 0.9  # move to a neighbouring code (within 2 places in the same cluster)
    ladder_size: int = 5  # career-ladder successors per occupation (market-wide, in any group)
    ladder_bonus: float = 2.0  # mean logit bonus of a ladder successor (uniform in 0.5x..1.5x)
    return_bonus: float = 2.2  # move back to an occupation held earlier (a non-consecutive repeat)
    last_job_bonus: float = 1.2  # after a spell out of work, extra pull of the last job held
    education_under: float = 1.1  # per education-score unit below an occupation's requirement
    education_over: float = 0.35  # per unit above requirement + 1.5 (overqualification)
    gender_effect: float = 1.0  # scale of gender differences in cluster preferences
    race_sd: float = 0.3  # sd of race-by-cluster effects
    region_sd: float = 0.25  # sd of region-by-cluster effects
    age_effect: float = 1.0  # scale of age profiles of clusters (managers older, service younger)
    trend: float = 0.2  # per decade: production and operator clusters lose, professional and service gain
    education_rate: float = -1.5  # shift of all education-rise hazards
    education_cohort: float = 0.05  # per decade of birth after 1970 (later cohorts study longer)
    education_school: float = 2.2  # rise hazard bonus while in school
    education_type: float = 1.0  # weight of a type's education propensity in the rise hazard
    education_age_decay: float = 0.35  # per year past the usual age of the next degree

    def __post_init__(self) -> None:
        problems = []
        if self.num_types < 1:
            problems.append(f"num_types: expected >= 1, got {self.num_types}")
        if not 0 <= self.favourites <= 50 or not 0 <= self.ladder_size <= 50:
            problems.append(
                f"favourites and ladder_size: expected 0..50, got {self.favourites} and {self.ladder_size}"
            )
        for name in (
            "type_spread",
            "type_stay_sd",
            "type_unemployment_sd",
            "type_olf_sd",
            "type_prior_demographics",
            "stay_cluster_sd",
            "race_sd",
            "region_sd",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name}: a standard deviation must be >= 0, got {getattr(self, name)}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class WageConfig:
    """Log hourly wages: an output only (never an input to occupations, never part of the oracle)."""

    enabled: bool = True
    intercept: float = 2.3
    occupation_sd: float = 0.15  # sd of occupation effects around their cluster's education-based mean
    education_return: float = 0.08  # per education-score unit
    experience: float = 0.04  # per year of potential experience (age - 18)
    experience_sq: float = -0.0007  # per squared year
    wage_type_effect: float = 1.0  # scales latent-type wage levels; 0 removes any dependence on the type
    type_sd: float = 0.25  # sd of the type wage levels before scaling
    female_gap: float = -0.12
    person_sd: float = 0.2  # sd of a persistent person effect
    noise_sd: float = 0.25  # sd of yearly noise


@dataclass(frozen=True)
class SynthConfig:
    """Everything ``generate_panel`` needs. Same config and seeds give the same panel on any number of workers."""

    source: str = "psid"  # written to the source column and used as the person-id prefix
    people: int = 12_338
    seed: int = 0  # population and sampling; combined with the source, so presets draw different people
    market_seed: int = 1990  # the labour market's parameters; shared by every preset on purpose
    shard_size: int = 10_000  # people per generation shard and per Parquet file (independent of workers)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    wages: WageConfig = field(default_factory=WageConfig)

    def __post_init__(self) -> None:
        problems = []
        if not SOURCE_PATTERN.match(self.source):
            problems.append(
                f"source: expected lower-case letters, digits and underscores, got {self.source!r}"
            )
        if self.people < 1:
            problems.append(f"people: expected >= 1, got {self.people}")
        if self.shard_size < 1:
            problems.append(f"shard_size: expected >= 1, got {self.shard_size}")
        pop, grid = self.population, self.grid
        if grid.kind == "survey" and pop.birth_years is None:
            problems.append(
                "population.birth_years: a survey grid needs birth years (they place the first wave)"
            )
        if (
            grid.kind == "survey"
            and pop.birth_years is not None
            and pop.birth_years[1] + grid.min_age > grid.last_year
        ):
            problems.append(
                f"population.birth_years: people born in {pop.birth_years[1]} reach grid.min_age={grid.min_age} "
                f"after grid.last_year={grid.last_year}"
            )
        if problems:
            raise ConfigError(problems)

    @property
    def num_shards(self) -> int:
        return -(-self.people // self.shard_size)


def _shares(name: str, shares: tuple[float, ...], n: int) -> list[str]:
    if len(shares) != n:
        return [f"{name}: expected {n} shares, got {len(shares)}"]
    if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
        return [f"{name}: shares must be >= 0 and sum to 1, got {list(shares)}"]
    return []


def load_preset(name: str) -> SynthConfig:
    """The preset for ``psid``, ``nlsy79``, ``nlsy97`` or ``resumes`` (CAREER Appendix F and Table 7).

    Raises:
        ConfigError: unknown preset name.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown synthetic preset {name!r}; expected one of {', '.join(PRESETS)}")
    base = SynthConfig()
    if name == "psid":
        return base
    if name == "nlsy79":
        # Born 1957-64, first interviewed in 1979 at ages 14-22; annual to 1994, biennial to 2014.
        return dataclasses.replace(
            base,
            source="nlsy79",
            people=12_270,
            population=dataclasses.replace(
                base.population,
                birth_years=(1957, 1964),
                race_shares=(0.50, 0.25, 0.16, 0.01, 0.01, 0.07),
                education_logits=(0.4, 1.4, 0.2, -0.6, 0.3, -0.6, -2.6, -2.6),
                type_manual_tilt=0.15,
            ),
            grid=dataclasses.replace(
                base.grid,
                first_year=1979,
                last_year=2014,
                annual_until=1994,
                entry_years=(1979, 1979),
                min_age=14,
                skip=0.08,
                attrition=0.02,
            ),
        )
    if name == "nlsy97":
        # Born 1980-84; CAREER keeps observations from age 18; annual to 2011, biennial to 2019.
        return dataclasses.replace(
            base,
            source="nlsy97",
            people=8_770,
            population=dataclasses.replace(
                base.population,
                birth_years=(1980, 1984),
                race_shares=(0.52, 0.26, 0.21, 0.0, 0.0, 0.01),
                education_logits=(0.8, 1.3, 0.5, -0.3, 0.6, -0.3, -2.3, -2.3),
                type_manual_tilt=0.2,
            ),
            grid=dataclasses.replace(
                base.grid,
                first_year=1997,
                last_year=2019,
                annual_until=2011,
                entry_years=(1997, 1997),
                min_age=18,
                skip=0.08,
                attrition=0.02,
            ),
        )
    # Resumes: college graduates over-represented, manual labourers under-represented, no time out of work
    # recorded (those years are simply missing), half of education missing, no gender or race, some noisy codes.
    return dataclasses.replace(
        base,
        source="resumes",
        people=100_000,
        population=dataclasses.replace(
            base.population,
            birth_years=None,
            education_tilt=0.4,
            type_education_tilt=0.8,
            type_manual_tilt=0.3,
        ),
        grid=GridConfig(
            kind="resume",
            first_year=1975,
            last_year=2019,
            annual_until=None,
            entry_years=(1975, 2019),
            skip=0.08,
            start_year_mean=2002.0,
            start_year_sd=8.0,
            mean_length=11.5,
        ),
        recording=RecordingConfig(
            special_states=False, demographics=False, education_missing=0.5, code_noise=0.07
        ),
        wages=dataclasses.replace(base.wages, enabled=False),
    )


def write_synth_config(config: SynthConfig, folder: Path) -> Path:
    """Write ``config`` as ``folder/synth.yaml`` (a ``kind: synth`` job YAML) and return its path.

    The same file is a valid ``laborlm data synth --config``, so a recorded panel can be regenerated as is.
    """
    path = Path(folder) / SYNTH_CONFIG_FILE
    path.write_text(dump_yaml(config, kind=CONFIG_KIND), encoding="utf-8")
    return path


def load_synth_config(folder: str | Path) -> SynthConfig | None:
    """The config recorded in a synthetic panel folder (or a saved oracle); None if the folder has none.

    Raises:
        ConfigError: ``synth.yaml`` is there but is not a valid synth config (it is never silently ignored: a
            wrong config would give a wrong oracle).
    """
    path = Path(folder) / SYNTH_CONFIG_FILE
    if not path.is_file():
        return None
    data = load_yaml(path)
    kind = data.pop("kind", CONFIG_KIND)
    if kind != CONFIG_KIND:
        raise ConfigError(f"kind: expected {CONFIG_KIND!r}, got {kind!r}", source=str(path))
    return build(SynthConfig, data, source=str(path))


@dataclass(frozen=True)
class SynthJobConfig(SynthConfig):
    """``kind: synth`` as a job (``laborlm run jobs/synth_psid.yaml``): the panel's config plus where it goes.

    The job keys sit beside the panel's, so every ``jobs/synth_*.yaml`` (and every panel's ``synth.yaml``) is a
    job YAML as it is. They are not part of the panel: ``panel_config()`` drops them, and only that is recorded
    in ``synth.yaml``, so where or how fast a panel was made never changes its oracle or its config hash.
    """

    out_dir: Path | None = None  # the panel folder; null: runs/<source> (runs/psid for the PSID preset)
    workers: int | None = None  # Ray Data CPU workers; null: generate in this process

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers: expected >= 1 or null, got {self.workers}")

    @property
    def panel_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else Path("runs") / self.source

    def panel_config(self) -> SynthConfig:
        """The ``SynthConfig`` that generates the panel, without the job's keys."""
        return SynthConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SynthConfig)})
