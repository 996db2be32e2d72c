"""The training workflow: phase (a) pretrain on a resume corpus, phase (b) fine-tune on a survey corpus.

    laborlm train jobs/train_tiny.yaml
    laborlm run jobs/train_tiny.yaml finetune.lora=true

``run_training(config)`` runs the enabled phases in order, each as one Ray Train ``TorchTrainer`` fit
(``loop.run_phase_loop`` through ``session.train_loop_per_worker`` on ``strategy.num_workers`` workers) over
the packed blocks of its corpus (``corpus.packed_dataset``, streamed, never materialised here). Phase (b)
starts from phase (a)'s best model (merged first if (a) trained an adapter) or from the model section. Before
training, the driver makes what is missing: the synthetic panel and corpus of a phase with ``synthesize`` set,
and the tokenizer (a byte-level BPE on the first phase's train split). Everything is idempotent: existing
corpora and tokenizers are reused, a phase whose best model already records its final step is skipped, and an
interrupted phase resumes from its latest checkpoint because its Ray Train run name and storage path are the
same.

Names are deterministic: the workflow is ``train-<model>-s<seed>-<config hash>`` and phase runs (Ray Train
and MLflow) append ``-pretrain`` / ``-finetune``. The driver opens the MLflow runs (a parent, a child per
phase) and rank 0 fills them. Library code never calls ``ray.init``.

Outputs under ``out_dir``: ``config.yaml``, ``tokenizer/``, ``data/<phase>/`` (synthetic panels and corpora),
``<phase>/model`` (best model: adapter or full weights, tokenizer, taxonomy.csv, laborlm_model.json),
``<phase>/merged`` (adapter phases: the merged full model), ``ray/`` (checkpoints), ``mlflow.db``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laborlm.config import dump_yaml
from laborlm.errors import CheckpointError, ConfigError, LaborLMError
from laborlm.tracking import metric_names as mn
from laborlm.training.config import PhaseConfig, TrainConfig
from laborlm.training.loop import MODEL_DIR, PhaseJob, run_phase_loop
from laborlm.training.models import is_adapter, merge_adapter, read_model_info, write_model_info
from laborlm.training.occupation_eval import OccupationEvalSpec
from laborlm.training.session import STATE_FILE, LoopFunction, seed_for, train_loop_per_worker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    run_name: str  # Ray Train and MLflow run name
    model_dir: Path  # the best model (adapter or full weights) with tokenizer and taxonomy
    init_dir: Path  # full weights for a next phase (model_dir, or the merged adapter)
    metrics: dict[str, float]  # the last report (tracking.metric_names: train/step, valid/best_loss, ...)
    checkpoint: str | None  # the latest checkpoint (folder or URI); None when the phase was already done
    mlflow_run_id: str | None


@dataclass(frozen=True)
class TrainResult:
    run_name: str
    out_dir: Path
    phases: dict[str, PhaseResult]
    mlflow_run_id: str | None  # the parent run
    tracking_uri: str | None

    def line(self) -> str:
        parts = []
        for name, p in self.phases.items():
            best = p.metrics.get(mn.VALID_BEST_LOSS)
            start = p.metrics.get(mn.VALID_INITIAL_LOSS)
            loss = (
                f", valid loss {start:.3f} -> best {best:.3f}"
                if best is not None and start is not None
                else ""
            )
            occupation = p.metrics.get(mn.VALID_BEST_OCCUPATION_PERPLEXITY)
            if occupation is not None:
                loss += (
                    f", best valid occupation perplexity {occupation:.2f} at step "
                    f"{int(p.metrics.get(mn.VALID_BEST_STEP, 0))}"
                )
            parts.append(f"{name}: step {int(p.metrics.get(mn.TRAIN_STEP, 0))}{loss} -> {p.model_dir}")
        return f"{self.run_name}: " + "; ".join(parts)


def run_training(
    config: TrainConfig,
    *,
    parent_run_id: str | None = None,
    callbacks: Callable[[str], Sequence[Any]] | None = None,
    loop: Callable[[str], LoopFunction] | None = None,
) -> TrainResult:
    """Run the enabled phases of ``config``; Ray must be initialised by the caller.

    Args:
        parent_run_id: the MLflow run this training's run nests under (a sweep's parent run).
        callbacks: phase name -> Ray Train callbacks of that phase's run (a sweep forwards reports to Tune).
        loop: phase name -> the loop function its workers run (``run_phase``'s ``loop``); None: the
            language-model loop. Tests wrap it (a worker that dies mid-run).

    Raises:
        ConfigError: a bad model, tokenizer or DeepSpeed template. LaborLMError: Ray not initialised, or a
            corpus that is missing and not synthesised. CheckpointError: resuming a run from a checkpoint of
            another run or world size. ray.train.TrainingFailedError: workers failed more than max_failures.
    """
    import ray

    if not ray.is_initialized():
        raise LaborLMError("run_training needs Ray initialised by the caller (ray.init or --address)")
    out_dir = Path(config.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_name = config.default_run_name()
    (out_dir / "config.yaml").write_text(dump_yaml(config, kind="train"), encoding="utf-8")
    corpora = {name: prepare_corpus(config, name, phase) for name, phase in config.phases()}
    tokenizer = prepare_tokenizer(config, list(corpora.values()))

    parent = None
    if config.tracking.enabled:
        from laborlm.tracking.mlflow_tracker import open_run

        parent = open_run(
            config.tracking, out_dir, run_name, parent_run_id=parent_run_id, tags={"laborlm.kind": "train"}
        )
        parent.log_artifact(out_dir / "config.yaml")
    results: dict[str, PhaseResult] = {}
    previous: Path | None = None
    try:
        for name, phase in config.phases():
            init = None
            if phase.init == "previous":
                init = previous
            result = run_phase(
                config,
                name,
                corpora[name],
                tokenizer,
                init,
                run_name=f"{run_name}-{name}",
                parent_run_id=parent.run_id if parent else None,
                callbacks=list(callbacks(name)) if callbacks else [],
                loop=loop(name) if loop is not None else run_phase_loop,
            )
            results[name] = result
            previous = result.init_dir
    except BaseException:
        if parent is not None:
            parent.finish("FAILED")
        raise
    if parent is not None:
        parent.log_metrics(
            {
                f"{name}/{k}": v
                for name, r in results.items()
                for k, v in r.metrics.items()
                if isinstance(v, (int, float))
            }
        )
        parent.finish()
    return TrainResult(
        run_name, out_dir, results, parent.run_id if parent else None, parent.tracking_uri if parent else None
    )


def prepare_corpus(config: TrainConfig, name: str, phase: PhaseConfig) -> Path:
    """The phase's corpus folder, synthesised and built first when missing and ``synthesize`` is set."""
    from laborlm.corpus import CorpusConfig, build_corpus, read_manifest

    out_dir = Path(config.out_dir).resolve()
    # Absolute: Ray Train workers (and Ray Data tasks) do not run in the driver's working directory.
    corpus = Path(phase.corpus).resolve() if phase.corpus is not None else out_dir / "data" / name / "corpus"
    if read_manifest(corpus) is not None:
        return corpus
    if phase.synthesize is None:
        raise LaborLMError(
            f"{name}.corpus: {corpus} is not a built corpus (laborlm corpus build), and "
            f"{name}.synthesize is null"
        )
    from laborlm.synthetic import generate_panel, load_preset

    panel = out_dir / "data" / name / phase.synthesize
    if not (panel / "synth.yaml").is_file():
        synth = dataclasses.replace(
            load_preset(phase.synthesize), people=phase.synth_people, seed=config.seed
        )
        logger.info(
            "%s: synthesising %d %s careers into %s", name, phase.synth_people, phase.synthesize, panel
        )
        generate_panel(synth, panel)
    build_corpus(CorpusConfig(inputs=(panel,), out_dir=corpus, template=phase.template))
    return corpus


def prepare_tokenizer(config: TrainConfig, corpora: Sequence[Path]) -> str:
    """``config.tokenizer``; else the model's own (``model.path``) with the corpora's label tokens added; else a
    BPE trained on every corpus's train split (reused when ``<out_dir>/tokenizer`` exists)."""
    if config.tokenizer is not None:  # a folder (made absolute for the workers) or a cached model id
        local = Path(config.tokenizer)
        tokenizer = str(local.resolve()) if local.exists() else config.tokenizer
        if config.stay_move is not None:  # asked for explicitly (null follows the given tokenizer)
            from laborlm.corpus.tokenizer import load_tokenizer
            from laborlm.llm.stay_move import stay_token_id

            # The tokenizer's stay token is what makes the model (and its scorer) stay/move, so a request the
            # tokenizer contradicts would be silently ignored.
            has_stay = stay_token_id(load_tokenizer(tokenizer)) is not None
            if config.stay_move and not has_stay:
                raise ConfigError(
                    f"stay_move: tokenizer {config.tokenizer!r} has no stay token; train it with "
                    "`laborlm corpus tokenizer` (it adds one by default) or set stay_move: null"
                )
            if not config.stay_move and has_stay:
                raise ConfigError(
                    f"stay_move: false, but tokenizer {config.tokenizer!r} has the stay token; train one "
                    "with `laborlm corpus tokenizer --no-stay-token` or set stay_move: null"
                )
        return tokenizer
    if config.model.path is not None and not config.tokenizer_label_tokens:
        return config.model.path
    from laborlm.corpus.tokenizer import TokenizerConfig, extend_tokenizer, train_tokenizer

    folder = Path(config.out_dir).resolve() / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        if config.model.path is not None:
            extend_tokenizer(config.model.path, corpora, folder, stay_token=config.uses_stay_move)
        else:
            train_tokenizer(
                corpora,
                folder,
                TokenizerConfig(
                    vocab_size=config.tokenizer_vocab_size,
                    label_tokens=config.tokenizer_label_tokens,
                    stay_token=config.uses_stay_move,
                ),
            )
    return str(folder)


def run_phase(
    config: TrainConfig,
    name: str,
    corpus: Path,
    tokenizer: str,
    init: Path | None,
    *,
    run_name: str,
    parent_run_id: str | None = None,
    callbacks: Sequence[Any] = (),
    loop: LoopFunction = run_phase_loop,
) -> PhaseResult:
    """One phase as one Ray Train fit (resuming its latest checkpoint if the run exists).

    Args:
        loop: what every worker runs, ``loop(session, job)`` (``training.session.train_loop_per_worker``);
            a module-level function (or a partial of one) so that Ray can ship it. Tests wrap
            ``run_phase_loop`` to act on its session, e.g. to kill a worker after some step.
    """
    phase: PhaseConfig = getattr(config, name)
    phase_dir = Path(config.out_dir).resolve() / name
    done = _finished_phase(config, name, run_name, init)
    if done is not None:
        return done
    from laborlm.corpus import read_manifest

    manifest = read_manifest(corpus)
    assert manifest is not None  # prepare_corpus made sure
    has_valid = sum(s.get("valid", 0) for s in manifest.people.values()) > 0
    datasets = _phase_datasets(config, name, corpus, tokenizer, has_valid)
    child = _open_phase_run(config, name, run_name, parent_run_id)
    job = _phase_job(
        config, name, corpus, manifest, tokenizer, init, run_name=run_name, has_valid=has_valid, child=child
    )
    storage = _storage_path(config)
    trainer = _phase_trainer(config, job, datasets, storage, loop, callbacks)
    logger.info(
        "%s: Ray Train run %s (%s, %d workers) -> %s",
        name,
        run_name,
        config.strategy.kind,
        config.strategy.num_workers,
        storage,
    )
    try:
        result = trainer.fit()
    except BaseException:
        if child is not None:
            child.finish("FAILED")
        raise
    if result.checkpoint is None:
        raise CheckpointError(f"{run_name}: the Ray Train run reported no checkpoint")
    metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
    mlflow_run_id = child.run_id if child else None
    step = _keep_best_model(result.checkpoint, phase_dir / MODEL_DIR, phase, metrics, mlflow_run_id)
    init_dir = _init_dir(phase_dir, phase_dir / MODEL_DIR, init, config)
    if child is not None:
        child.finish()
    logger.info("%s: done at step %d; best model in %s", name, step, phase_dir / MODEL_DIR)
    return PhaseResult(
        name, run_name, phase_dir / MODEL_DIR, init_dir, metrics, result.checkpoint.path, mlflow_run_id
    )


def _finished_phase(config: TrainConfig, name: str, run_name: str, init: Path | None) -> PhaseResult | None:
    """The phase's result when its model already records this run trained to ``max_steps``; else None."""
    phase: PhaseConfig = getattr(config, name)
    phase_dir = Path(config.out_dir).resolve() / name
    model_dir = phase_dir / MODEL_DIR
    done = read_model_info(model_dir)
    if not (
        done.get("run_name") == run_name
        and done.get("completed")
        and done.get("max_steps") == phase.max_steps
    ):
        return None
    logger.info(
        "%s: %s already trained (step %d); reusing %s", name, run_name, done.get("final_step"), model_dir
    )
    return PhaseResult(
        name,
        run_name,
        model_dir,
        _init_dir(phase_dir, model_dir, init, config),
        dict(done.get("metrics", {})),
        None,
        done.get("mlflow_run_id"),
    )


def _phase_datasets(
    config: TrainConfig, name: str, corpus: Path, tokenizer: str, has_valid: bool
) -> dict[str, Any]:
    """The packed train (and, where the corpus has one, valid) Ray datasets of the phase, streamed."""
    from laborlm.corpus import PackConfig, packed_dataset

    phase: PhaseConfig = getattr(config, name)
    pack = PackConfig(
        tokenizer=tokenizer, block_size=config.block_size, whole_documents=config.pack_whole_documents
    )
    train_pack = dataclasses.replace(pack, fraction=phase.data_fraction)  # validation always whole
    datasets: dict[str, Any] = {"train": packed_dataset(corpus, train_pack, split="train")}
    if has_valid:
        valid = packed_dataset(corpus, pack, split="valid")
        datasets["valid"] = valid.limit(phase.eval_blocks) if phase.eval_blocks is not None else valid
    else:
        logger.warning("%s: %s has no valid split; the last model is kept instead of the best", name, corpus)
    return datasets


def _open_phase_run(config: TrainConfig, name: str, run_name: str, parent_run_id: str | None) -> Any:
    """The phase's MLflow child run (rank 0 fills it), or None without tracking."""
    if not config.tracking.enabled:
        return None
    from laborlm.tracking.mlflow_tracker import open_run

    return open_run(
        config.tracking,
        Path(config.out_dir).resolve(),
        run_name,
        parent_run_id=parent_run_id,
        tags={"laborlm.kind": "train", "laborlm.phase": name},
    )


def _phase_job(
    config: TrainConfig,
    name: str,
    corpus: Path,
    manifest: Any,
    tokenizer: str,
    init: Path | None,
    *,
    run_name: str,
    has_valid: bool,
    child: Any,
) -> PhaseJob:
    """What every worker of the phase gets: config, corpus files (``manifest``: the corpus's), tracking run."""
    phase: PhaseConfig = getattr(config, name)
    return PhaseJob(
        config=config,
        phase=name,
        run_name=run_name,
        tokenizer=tokenizer,
        init_path=str(init) if init is not None else None,
        has_valid=has_valid,
        model_info={
            "template": manifest.template.get("name"),
            "taxonomy": manifest.taxonomy.get("name"),
            "corpus_config_hash": manifest.config_hash,
        },
        taxonomy_file=str(corpus / "taxonomy.csv"),
        template_file=str(corpus / "template.yaml"),
        occupation_eval=(
            OccupationEvalSpec(str(corpus), phase.occupation_eval_people)
            if has_valid and phase.occupation_eval_people
            else None
        ),
        tracking_uri=child.tracking_uri if child else None,
        mlflow_run_id=child.run_id if child else None,
    )


def _storage_path(config: TrainConfig) -> str:
    """Where Ray Train keeps the phase runs: ``checkpoint.storage_path`` (absolute, or a URI), else ``<out>/ray``."""
    storage = config.checkpoint.storage_path or str(Path(config.out_dir).resolve() / "ray")
    if "://" not in storage:
        storage = str(Path(storage).resolve())  # Ray Train needs an absolute local path
    return storage


def _phase_trainer(
    config: TrainConfig,
    job: PhaseJob,
    datasets: dict[str, Any],
    storage: str,
    loop: LoopFunction,
    callbacks: Sequence[Any],
) -> Any:
    """The phase's ``TorchTrainer``; its run name and storage make a re-run resume the latest checkpoint."""
    import ray.train
    import ray.train.torch

    strategy = config.strategy
    resources: dict[str, float] = {"CPU": strategy.cpus_per_worker}
    if strategy.use_gpu:
        resources["GPU"] = 1
    return ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"loop": loop, "args": [job], "use_gpu": strategy.use_gpu},
        scaling_config=ray.train.ScalingConfig(
            num_workers=strategy.num_workers,
            use_gpu=strategy.use_gpu,
            resources_per_worker=resources,
            placement_strategy=strategy.placement,
        ),
        run_config=ray.train.RunConfig(
            name=job.run_name,
            storage_path=storage,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.checkpoint.keep),
            failure_config=ray.train.FailureConfig(max_failures=config.checkpoint.max_failures),
            callbacks=list(callbacks),
        ),
        datasets=datasets,
    )


def _keep_best_model(
    checkpoint: Any, model_dir: Path, phase: PhaseConfig, metrics: dict[str, float], mlflow_run_id: str | None
) -> int:
    """Copy the last checkpoint's best model to ``model_dir`` and record the phase as done; the final step."""
    with checkpoint.as_directory() as folder:
        state = json.loads((Path(folder) / STATE_FILE).read_text())
        shutil.rmtree(model_dir, ignore_errors=True)
        shutil.copytree(Path(folder) / MODEL_DIR, model_dir)
    info = read_model_info(model_dir)
    info.update(
        {
            "final_step": state["state"]["step"],
            "completed": True,
            "max_steps": phase.max_steps,
            "metrics": metrics,
            "stopped_early": state["state"].get("stopped_early", False),
            "mlflow_run_id": mlflow_run_id,
        }
    )
    write_model_info(model_dir, info)
    step: int = state["state"]["step"]
    return step


def _init_dir(phase_dir: Path, model_dir: Path, init: Path | None, config: TrainConfig) -> Path:
    """Full weights for the next phase: the model itself, or base + adapter merged into ``merged/``."""
    if not is_adapter(model_dir):
        return model_dir
    merged = phase_dir / "merged"
    if not (merged / "config.json").is_file():
        base = init if init is not None else config.model.path
        if base is None:
            # A LoRA phase on a fresh config-built model: its base is re-created from the seed.
            base = _fresh_base(config, model_dir, phase_dir / "base")
        merge_adapter(base, model_dir, merged)
    return merged


def _fresh_base(config: TrainConfig, model_dir: Path, out: Path) -> Path:
    from laborlm.corpus.tokenizer import load_tokenizer
    from laborlm.training.models import build_model

    model = build_model(
        config.model, load_tokenizer(model_dir), block_size=config.block_size, seed=seed_for(config.seed, 0)
    )
    model.save_pretrained(str(out))
    return out
