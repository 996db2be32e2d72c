"""Scaling-law sweeps with Ray Tune: pretraining data volume x model size x seed, or an ASHA search.

    laborlm sweep jobs/sweep_scaling.yaml                 # the local 3 x 3 grid (~20 min on 2 idle cores)
    laborlm sweep jobs/sweep_asha.yaml                    # ASHA over fine-tuning lr and LoRA rank
    laborlm sweep report runs/sweeps/scaling-local        # power-law fits, table, plots (also run at the end)
    laborlm sweep jobs/sweep_scaling.yaml survey_panel=runs/nlsw resume_panel=runs/resumes   # users' panels

The driver prepares the data once (the survey and resume panels, their corpora, one BPE tokenizer that every
trial shares, so perplexities compare; ``workflows.panels``: synthetic presets, or the user's ``survey_panel``
and ``resume_panel``, checked when the config is loaded), opens one MLflow parent run, and hands Ray Tune a flat
dict of dotted training overrides per trial (``pretrain.data_fraction``, ``model.size`` or ``model.path``,
``seed``, or searched values). Each trial turns that dict into a :class:`TrainConfig` with the same
``apply_overrides`` the CLI uses, trains both phases with Ray Train (its own workers and resources, Train
reports forwarded to Tune for early stopping), and scores the fine-tuned model's next-occupation perplexity
on the survey's valid and test persons with the shared harness. The training run is the trial's MLflow child
run of the sweep's parent run.

Everything is keyed deterministically (trial folders, run names, MLflow run names), so a sweep whose driver
died resumes with ``Tuner.restore``: finished trials are kept, an interrupted one restarts and Ray Train
resumes it from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ray.tune import Callback
from ray.tune.integration.ray_train import TuneReportCallback

from laborlm.config import apply_overrides, build, flatten
from laborlm.errors import ConfigError, LaborLMError
from laborlm.sweeps.fit import write_report
from laborlm.sweeps.results import ATTEMPTS_FILE, PREPARED_FILE, RESULTS_FILE, TRIAL_RESULT, collect_results
from laborlm.tracking import metric_names as mn
from laborlm.tracking.mlflow_tracker import TrackingConfig
from laborlm.workflows.panels import (
    RESUMES,
    SURVEY_PRESETS,
    first_people,
    generate_preset_panel,
    panel_problems,
    prepare_panels,
    preset_problems,
)

__all__ = [
    "ATTEMPTS_FILE",
    "PREPARED_FILE",
    "RESULTS_FILE",
    "TRIAL_RESULT",
    "SweepConfig",
    "collect_results",
    "prepare",
    "run_sweep",
    "scaling_trial",
]

logger = logging.getLogger(__name__)

DATA_FRACTION = "pretrain.data_fraction"


@dataclass(frozen=True)
class AshaConfig:
    """Asynchronous successive halving over a searched space (``search.kind: asha``)."""

    num_samples: int = 8  # trials drawn from the space
    max_t: int = 6  # evaluations of the searched (last) phase a trial may run
    grace_period: int = 2  # evaluations before a trial may be stopped
    reduction_factor: int = 2
    lr: tuple[float, float] | None = (1e-4, 3e-2)  # log-uniform range of <phase>.lr; null: not searched
    lr_phase: Literal["pretrain", "finetune"] = "finetune"
    lora_ranks: tuple[int, ...] = (
        4,
        8,
        16,
    )  # choices of lora.rank (sets <lr_phase>.lora=true); (): not searched

    def __post_init__(self) -> None:
        problems = []
        if self.num_samples < 1 or self.max_t < 1 or self.grace_period < 1 or self.reduction_factor < 2:
            problems.append("num_samples, max_t, grace_period must be >= 1 and reduction_factor >= 2")
        if self.lr is not None and not 0 < self.lr[0] < self.lr[1]:
            problems.append(f"lr: expected 0 < low < high, got {self.lr}")
        if any(r < 1 for r in self.lora_ranks):
            problems.append(f"lora_ranks: must be >= 1, got {self.lora_ranks}")
        if self.lr is None and not self.lora_ranks:
            problems.append("an ASHA search needs lr or lora_ranks")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class SweepConfig:
    """One scaling study. The defaults are the local grid (3 data volumes x 3 tiny models x 1 seed)."""

    name: str = "scaling-local"  # sweep folder <out_dir>/<name> and the MLflow parent run's name
    out_dir: Path = Path("runs/sweeps")
    search: Literal["grid", "asha"] = "grid"
    survey: str = "psid"  # synthetic survey preset fine-tuned and scored on (unless survey_panel is given)
    survey_panel: Path | None = None  # a user's panel instead (laborlm data import folder, Parquet/CSV)
    resume_panel: Path | None = None  # a user's resume panel to pretrain on instead of the synthetic resumes
    survey_people: int = 1500  # of the synthetic survey
    resume_people: int = 8000  # of the synthetic resumes; data_fractions take nested shares of the corpus
    pooled_surveys: tuple[str, ...] = ()  # other survey presets pooled into the pretraining corpus
    pooled_people: int = 1500  # people of each pooled survey
    data_seed: int = 0  # synthetic data (the trials' seeds vary training only)
    data_fractions: tuple[float, ...] = (0.1, 0.3, 1.0)  # grid: shares of the pretraining corpus
    models: tuple[str, ...] = (
        "llama-200k",
        "llama-400k",
        "llama-1m",
    )  # sizes, or model folders / ids on a cluster
    seeds: tuple[int, ...] = (0,)
    pretrain_epochs: float | None = 1.0  # pretraining steps = epochs over the trial's share of the corpus, so
    #                                      data volume is tokens seen (Kaplan/Chinchilla); null: train_overrides'
    template: str = "labor-llm"
    tokenizer_vocab_size: int = 4096
    stay_move: bool = True  # stay/move training (llm.stay_move): the shared tokenizer gets the stay token, so
    #                         every trial (stay_move: null) trains and is scored two-stage; false: plain LMs
    train_overrides: tuple[
        str, ...
    ] = ()  # dotted TrainConfig overrides for every trial (before the trial's own)
    valid_people: int | None = 40  # survey valid persons scored per trial; null: all
    test_people: int | None = 80  # survey test persons scored per trial; null: all
    workers_per_trial: int = 1  # Ray Train workers of each trial
    cpus_per_worker: float = 0.4  # leave a CPU for Ray Data's packing tasks on small machines
    gpus_per_worker: int = 0  # >0: use_gpu (one GPU per worker)
    max_concurrent_trials: int = 2
    asha: AshaConfig = field(default_factory=AshaConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        problems = []
        if not self.data_fractions or any(not 0 < f <= 1 for f in self.data_fractions):
            problems.append(f"data_fractions: need values in (0, 1], got {self.data_fractions}")
        if not self.models:
            problems.append("models: at least one")
        if not self.seeds:
            problems.append("seeds: at least one")
        if self.workers_per_trial < 1 or self.max_concurrent_trials < 1:
            problems.append("workers_per_trial and max_concurrent_trials must be >= 1")
        if self.pretrain_epochs is not None and self.pretrain_epochs <= 0:
            problems.append(f"pretrain_epochs: must be > 0 or null, got {self.pretrain_epochs}")
        if self.survey_people < 50 or self.resume_people < 50:
            problems.append("survey_people and resume_people must be >= 50")
        for o in self.train_overrides:
            if "=" not in o:
                problems.append(f"train_overrides: expected key=value, got {o!r}")
        problems += preset_problems("survey", self.survey, known=SURVEY_PRESETS, path_key="survey_panel")
        for preset in self.pooled_surveys:
            problems += preset_problems(
                "pooled_surveys", preset, known=SURVEY_PRESETS, path_key="survey_panel"
            )
        problems += panel_problems(
            "survey_panel",
            self.survey_panel,
            preset_hint="for a synthetic survey give survey=NAME and leave survey_panel unset",
        )
        problems += panel_problems(
            "resume_panel",
            self.resume_panel,
            preset_hint=f"leave resume_panel unset to pretrain on the synthetic {RESUMES} (resume_people=N)",
        )
        if problems:
            raise ConfigError(problems)

    @property
    def folder(self) -> Path:
        return Path(self.out_dir).resolve() / self.name


@dataclass(frozen=True)
class Prepared:
    """What the driver made once and every trial reads (paths are absolute; small and picklable)."""

    survey_panel: str
    pretrain_corpus: str
    finetune_corpus: str
    tokenizer: str
    parent_run_id: str | None
    tracking_uri: str | None
    experiment: str
    volumes: dict[str, dict[str, int]]  # str(data fraction) -> train-split people and tokens it keeps
    split_seed: int  # the person split of the corpora, which score_trial's valid and test persons follow


def model_override(model: str) -> str:
    """``model.size=...`` for a family size, ``model.path=...`` for a model folder or hub id (clusters)."""
    from laborlm.training.models import SIZES

    return f"model.size={model}" if model in SIZES else f"model.path={model}"


def trial_key(params: dict[str, Any]) -> str:
    """A readable, deterministic folder name for a trial's overrides (``llama-1m-d0.3-s0-<hash6>``)."""
    model = str(params.get("model", "model")).rstrip("/").rsplit("/", 1)[-1]
    parts = [model]
    if DATA_FRACTION in params:
        parts.append(f"d{params[DATA_FRACTION]}")
    if "seed" in params:
        parts.append(f"s{params['seed']}")
    blob = json.dumps(sorted((k, str(v)) for k, v in params.items()))
    return "-".join(parts + [hashlib.sha256(blob.encode()).hexdigest()[:6]])


def param_space(cfg: SweepConfig) -> dict[str, Any]:
    """Tune's search space: a flat dict of dotted TrainConfig overrides (strings are parsed by the config)."""
    from ray import tune

    if cfg.search == "grid":
        return {
            DATA_FRACTION: tune.grid_search(list(cfg.data_fractions)),
            "model": tune.grid_search(list(cfg.models)),
            "seed": tune.grid_search(list(cfg.seeds)),
        }
    space: dict[str, Any] = {
        "model": cfg.models[0],
        "seed": cfg.seeds[0],
        DATA_FRACTION: max(cfg.data_fractions),
    }
    if cfg.asha.lr is not None:
        space[f"{cfg.asha.lr_phase}.lr"] = tune.loguniform(*cfg.asha.lr)
    if cfg.asha.lora_ranks:
        space[f"{cfg.asha.lr_phase}.lora"] = True
        space["lora.rank"] = tune.choice(list(cfg.asha.lora_ranks))
    return space


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """The trial's dotted overrides, ``model`` mapped to ``model.size`` / ``model.path``."""
    out = []
    for key, value in sorted(params.items()):
        if key == "model":
            out.append(model_override(str(value)))
        else:
            out.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def train_config_for(cfg: SweepConfig, prepared: Prepared, params: dict[str, Any], trial_dir: Path) -> Any:
    """The trial's TrainConfig: the sweep's fixed settings, then ``train_overrides``, then the trial's params.

    The same ``apply_overrides`` as ``laborlm train ... key=value``, so a trial is reproducible by hand.
    """
    from laborlm.training import TrainConfig

    base = [
        f"out_dir={trial_dir}",
        f"tokenizer={prepared.tokenizer}",
        f"pretrain.corpus={prepared.pretrain_corpus}",
        "pretrain.synthesize=null",
        f"finetune.corpus={prepared.finetune_corpus}",
        "finetune.synthesize=null",
        f"strategy.num_workers={cfg.workers_per_trial}",
        f"strategy.cpus_per_worker={cfg.cpus_per_worker}",
        f"strategy.use_gpu={'true' if cfg.gpus_per_worker else 'false'}",
        f"tracking.experiment={prepared.experiment}",
    ]
    if prepared.tracking_uri:
        base.append(f"tracking.tracking_uri={prepared.tracking_uri}")
    else:
        base.append("tracking.enabled=false")
    overrides = base + list(cfg.train_overrides) + trial_overrides(params)
    source = f"sweep trial {trial_key(params)}"
    config = build(TrainConfig, apply_overrides(TrainConfig, {}, overrides), source=source)
    if cfg.pretrain_epochs is None or not config.pretrain.enabled:
        return config
    # Steps for ``pretrain_epochs`` passes over the trial's data (tokens per step over all workers).
    tokens = prepared.volumes[str(config.pretrain.data_fraction)]["tokens"]
    per_step = (
        config.block_size * config.micro_batch_size * config.grad_accum_steps * config.strategy.num_workers
    )
    steps = max(1, math.ceil(cfg.pretrain_epochs * tokens / per_step))
    return build(
        TrainConfig,
        apply_overrides(TrainConfig, {}, overrides + [f"pretrain.max_steps={steps}"]),
        source=source,
    )


# --- driver --------------------------------------------------------------------------------------------------


def prepare(cfg: SweepConfig, workers: int = 2) -> Prepared:
    """Data, corpora and the shared tokenizer (each reused when already built) and the MLflow parent run."""
    from laborlm.corpus import CorpusConfig, build_corpus
    from laborlm.corpus.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer
    from laborlm.llm.stay_move import stay_token_id

    folder = cfg.folder
    # The user's panels are read and checked before the sweep folder is made.
    panels = prepare_panels(
        survey=cfg.survey,
        survey_panel=cfg.survey_panel,
        survey_people=cfg.survey_people,
        resumes=True,
        resume_panel=cfg.resume_panel,
        resume_people=cfg.resume_people,
        seed=cfg.data_seed,
        out=folder,
        workers=workers,
    )
    folder.mkdir(parents=True, exist_ok=True)
    survey = panels.survey
    assert panels.resumes is not None  # resumes=True
    pretrain_inputs = [panels.resumes]
    pretrain_inputs += [
        generate_preset_panel(p, cfg.pooled_people, cfg.data_seed, folder, workers)
        for p in cfg.pooled_surveys
    ]

    def corpus(inputs: list[Path], name: str) -> Path:
        target = folder / "corpus" / name
        # build_corpus reuses a corpus whose manifest matches this config and its inputs, else rebuilds it (a
        # folder from before the split followed data_seed is rebuilt).
        build_corpus(
            CorpusConfig(inputs=tuple(inputs), out_dir=target, template=cfg.template, split=panels.split),
            num_workers=workers,
        )
        return target

    pretrain = corpus(pretrain_inputs, "pretrain")
    finetune = corpus([survey], panels.survey_name)
    tokenizer = folder / "tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():
        # Resumes and the survey: the survey's dataset tag and special states are absent from resumes.
        train_tokenizer(
            [pretrain, finetune],
            tokenizer,
            TokenizerConfig(vocab_size=cfg.tokenizer_vocab_size, stay_token=cfg.stay_move),
        )
    elif (stay_token_id(load_tokenizer(tokenizer)) is not None) != cfg.stay_move:
        # A reused tokenizer decides whether trials train stay/move; a silent mismatch would mix the two.
        raise ConfigError(
            f"stay_move: {str(cfg.stay_move).lower()}, but the sweep's tokenizer {tokenizer} was trained "
            f"{'without' if cfg.stay_move else 'with'} the stay token; use another name= or out_dir="
        )

    parent_id, uri = None, None
    if cfg.tracking.enabled:
        from laborlm.tracking.mlflow_tracker import open_run

        parent = open_run(cfg.tracking, folder, f"sweep-{cfg.name}", tags={"laborlm.kind": "sweep"})
        parent.log_params(flatten(cfg))
        parent_id, uri = parent.run_id, parent.tracking_uri
    fractions = cfg.data_fractions if cfg.search == "grid" else (max(cfg.data_fractions),)
    volumes = {str(f): data_volume(pretrain, str(tokenizer), f) for f in fractions}
    prepared = Prepared(
        str(survey),
        str(pretrain),
        str(finetune),
        str(tokenizer),
        parent_id,
        uri,
        cfg.tracking.experiment,
        volumes,
        panels.split.seed,
    )
    (folder / PREPARED_FILE).write_text(json.dumps(prepared.__dict__, indent=2))
    return prepared


def run_sweep(cfg: SweepConfig, *, workers: int = 2) -> Path:
    """Run (or resume) the sweep, then write its report; returns the sweep folder. Ray must be initialised."""
    import ray
    from ray import tune

    if not ray.is_initialized():
        raise LaborLMError("run_sweep needs Ray initialised by the caller (ray.init or --address)")
    # Train reports carry the objective only once validation has run; Tune must not reject the others.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # A trial ASHA stops is blocked inside its Ray Train run; Tune would wait 600 s before killing it, and
    # until then its workers and placement group hold their CPUs (ray-project/ray#54305). Kill it soon.
    os.environ.setdefault("TUNE_FORCE_TRIAL_CLEANUP_S", "10")
    cfg = dataclasses.replace(cfg, out_dir=Path(cfg.out_dir).resolve())  # trials run in Tune's own folders
    folder = cfg.folder
    prepared = prepare(cfg, workers)
    (folder / "sweep.yaml").write_text(_dump(cfg))
    trainable = tune.with_resources(
        tune.with_parameters(scaling_trial, sweep=cfg, prepared=prepared),
        {
            "cpu": 0.1
        },  # the trial function only waits on its Ray Train run, whose workers hold the real resources
    )
    tune_dir = folder / "tune"
    started = time.monotonic()
    if tune.Tuner.can_restore(str(tune_dir)):
        logger.info("sweep %s: resuming from %s (finished trials are kept)", cfg.name, tune_dir)
        tuner = tune.Tuner.restore(
            str(tune_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(cfg),
            tune_config=_tune_config(cfg),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(folder),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=1),
                callbacks=[ReclaimPlacementGroups(folder)],
            ),
        )
    grid = tuner.fit()
    errors = [str(grid[i].error) for i in range(len(grid)) if grid[i].error is not None]
    rows = collect_results(folder)
    logger.info(
        "sweep %s: %d trials finished, %d errored, %.0f s",
        cfg.name,
        len(rows),
        len(errors),
        time.monotonic() - started,
    )
    if errors and not rows:
        raise LaborLMError(f"sweep {cfg.name}: every trial failed; first error: {errors[0]}")
    write_report(folder)
    if prepared.parent_run_id and prepared.tracking_uri:
        from laborlm.tracking.mlflow_tracker import AttachedRun

        AttachedRun(prepared.tracking_uri, prepared.parent_run_id).finish("FAILED" if errors else "FINISHED")
    return folder


def _tune_config(cfg: SweepConfig) -> Any:
    from ray import tune

    if cfg.search == "grid":
        return tune.TuneConfig(
            max_concurrent_trials=cfg.max_concurrent_trials,
            trial_dirname_creator=_dirname,
            trial_name_creator=_dirname,
        )
    from ray.tune.schedulers import ASHAScheduler

    # stop_last_trials=False: a trial that reaches max_t finishes (scoring, result.json) instead of being cut.
    scheduler = ASHAScheduler(
        time_attr=OBJECTIVE_TIME,
        max_t=cfg.asha.max_t,
        grace_period=cfg.asha.grace_period,
        reduction_factor=cfg.asha.reduction_factor,
        stop_last_trials=False,
    )
    return tune.TuneConfig(
        metric=OBJECTIVE,
        mode="min",
        scheduler=scheduler,
        num_samples=cfg.asha.num_samples,
        max_concurrent_trials=cfg.max_concurrent_trials,
        trial_dirname_creator=_dirname,
        trial_name_creator=_dirname,
    )


class ReclaimPlacementGroups(Callback):
    """Remove the Ray Train placement groups of trials that ended, once Tune has killed their actors.

    A trial stopped by ASHA is killed inside its Ray Train run, and Train V2 leaves the worker group's
    placement group reserved (ray-project/ray#54305): on a small cluster the next trials then wait forever for
    CPUs. Each phase records its group's id in the trial folder (``paths.PLACEMENT_GROUP_FILE``);
    ``grace_s`` after a trial ends, whatever of those groups still exists is removed.
    """

    def __init__(self, sweep_folder: Path, grace_s: float = 20.0) -> None:
        self.trials = Path(sweep_folder) / "trials"
        self.grace_s = grace_s
        self.due: list[tuple[float, str]] = []

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.due.append((time.monotonic() + self.grace_s, trial_key(dict(trial.config))))

    on_trial_error = on_trial_complete

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        ready = [key for when, key in self.due if when <= now]
        self.due = [(when, key) for when, key in self.due if when > now]
        for key in ready:
            self.reclaim(key)

    def reclaim(self, key: str) -> None:
        import ray
        from ray.util.placement_group import PlacementGroup, placement_group_table

        from laborlm.paths import PLACEMENT_GROUP_FILE

        table = placement_group_table()
        for path in (self.trials / key).glob(f"*/{PLACEMENT_GROUP_FILE}"):
            group_id = path.read_text().strip()
            if table.get(group_id, {}).get("state") == "CREATED":
                ray.util.remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))
                logger.info(
                    "trial %s ended: removed its leftover Ray Train placement group %s", key, group_id
                )


def _dirname(trial: Any) -> str:
    return trial_key(dict(trial.config))


def _dump(cfg: SweepConfig) -> str:
    from laborlm.config import dump_yaml

    return dump_yaml(cfg, kind="sweep")


# --- trial ---------------------------------------------------------------------------------------------------

OBJECTIVE = "objective/valid_occupation_perplexity"  # the last phase's valid occupation perplexity (its valid
#                                                      loss where that is not measured), for ASHA
OBJECTIVE_TIME = "objective/evaluations"  # ASHA's time axis: evaluations of the last phase so far


def scaling_trial(params: dict[str, Any], *, sweep: SweepConfig, prepared: Prepared) -> None:
    """One Tune trial: train both phases with Ray Train, score the result, report the final metrics to Tune."""
    from ray import tune

    from laborlm.training.workflow import run_training

    params = dict(params)
    key = trial_key(params)
    trial_dir = sweep.folder / "trials" / key
    trial_dir.mkdir(parents=True, exist_ok=True)
    done = trial_dir / TRIAL_RESULT
    if done.is_file():  # finished, but the driver died before Tune recorded it: report again, train nothing
        row = json.loads(done.read_text())
        tune.report({k: v for k, v in row.items() if isinstance(v, (int, float, str))})
        return
    with (trial_dir / ATTEMPTS_FILE).open("a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} start\n")
    config = train_config_for(sweep, prepared, params, trial_dir)
    phases = [name for name, _ in config.phases()]
    result = run_training(
        config,
        parent_run_id=prepared.parent_run_id,
        callbacks=lambda phase: [ForwardToTune(phase, last=phase == phases[-1])],
    )
    final = result.phases[phases[-1]]
    metrics = score_trial(sweep, prepared, final.init_dir)
    tokens = sum(float(r.metrics.get(mn.TRAIN_TOKENS, 0.0)) for r in result.phases.values())
    counts = parameter_counts(final.init_dir)
    row = {
        "trial": key,
        "overrides": trial_overrides(params),
        "model": str(params.get("model")),
        "data_fraction": float(params.get(DATA_FRACTION, 1.0)),
        "seed": int(params.get("seed", 0)),
        mn.MODEL_PARAMETERS: counts["parameters"],
        mn.MODEL_NON_EMBEDDING_PARAMETERS: counts["non_embedding"],
        mn.DATA_PRETRAIN_PEOPLE: prepared.volumes[str(config.pretrain.data_fraction)]["people"],
        mn.DATA_PRETRAIN_TOKENS: prepared.volumes[str(config.pretrain.data_fraction)]["tokens"],
        mn.TRAIN_TOKENS: tokens,
        mn.TRAIN_FLOPS: 6.0 * counts["parameters"] * tokens,
        **metrics,
        "run_name": result.run_name,
        "mlflow_run_id": result.mlflow_run_id,
    }
    if result.mlflow_run_id and result.tracking_uri:
        from laborlm.tracking.mlflow_tracker import AttachedRun

        run = AttachedRun(result.tracking_uri, result.mlflow_run_id)
        run.log_params(
            {"sweep.trial": key, "sweep.name": sweep.name, **{f"sweep.{k}": v for k, v in params.items()}}
        )
        run.log_metrics({k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k != "seed"})
    (trial_dir / TRIAL_RESULT).write_text(json.dumps(row, indent=2))
    tune.report({k: v for k, v in row.items() if isinstance(v, (int, float, str))})


def score_trial(sweep: SweepConfig, prepared: Prepared, model_dir: Path) -> dict[str, float]:
    """Next-occupation perplexity of the trained model on the survey's valid and test persons (shared harness)."""
    from laborlm.evaluation.harness import evaluate_model
    from laborlm.llm import LlmOccupationModel
    from laborlm.readers import read_panel
    from laborlm.splits import SplitConfig, select_split

    read = read_panel(Path(prepared.survey_panel))
    split = SplitConfig(seed=prepared.split_seed)
    model = LlmOccupationModel.from_pretrained(
        model_dir, prepared.tokenizer, sweep.template, read.taxonomy, name="trial"
    )
    out: dict[str, float] = {}
    for name, people in (("valid", sweep.valid_people), ("test", sweep.test_people)):
        panel = select_split(read.table, name, split)
        if people is not None:
            panel = first_people(panel, people)
        m = evaluate_model(model, panel, read.taxonomy)
        key = mn.VALID_OCCUPATION_PERPLEXITY if name == "valid" else mn.TEST_PERPLEXITY
        out[key] = m.perplexity
        if m.oracle_perplexity is not None:
            out[f"{name}/oracle_perplexity"] = m.oracle_perplexity
    return out


def parameter_counts(model_dir: Path) -> dict[str, int]:
    """All parameters and non-embedding ones (Kaplan et al.'s N: input and output embeddings excluded)."""
    from safetensors import safe_open

    total = embedding = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118  (safe_open is not a mapping)
                shape = f.get_slice(name).get_shape()
                n = 1
                for d in shape:
                    n *= int(d)
                total += n
                if name.endswith(("embed_tokens.weight", "lm_head.weight")):
                    embedding += n
    if total == 0:
        raise LaborLMError(f"{model_dir}: no safetensors weights to count")
    return {"parameters": total, "non_embedding": total - embedding}


def data_volume(corpus: Path, tokenizer: str, fraction: float) -> dict[str, int]:
    """Train-split people and tokens (with each document's EOS) of the corpus share a data fraction keeps."""
    from laborlm.corpus.build import corpus_files, iter_texts
    from laborlm.corpus.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    people = tokens = 0
    for texts in iter_texts(corpus_files(corpus), "train", 2048, fraction):
        people += len(texts)
        tokens += sum(len(ids) + 1 for ids in tok(texts, add_special_tokens=True)["input_ids"])
    return {"people": people, "tokens": tokens}


class ForwardToTune(TuneReportCallback):
    """A Ray Train callback: each report of the phase's run goes to the enclosing Tune trial.

    Ray's ``TuneReportCallback`` plus the phase's name and, for the last phase, the valid occupation
    perplexity (what users read; the whole-text loss is dominated by the template) under :data:`OBJECTIVE`,
    so ASHA compares trials on the phase that decides the outcome.
    """

    def __init__(self, phase: str, *, last: bool) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.phase, self.last = phase, last
        self.evaluations = 0

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        first = dict(metrics[0]) if metrics else {}
        first["phase"] = self.phase
        if self.last and mn.VALID_LOSS in first:
            self.evaluations += 1
            first[OBJECTIVE] = first.get(mn.VALID_OCCUPATION_PERPLEXITY, first[mn.VALID_LOSS])
            first[OBJECTIVE_TIME] = self.evaluations
        super().after_report(run_context, [first], checkpoint)
