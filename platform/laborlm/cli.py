"""The `laborlm` command. The only module that configures logging or exits the process.

    laborlm quickstart                      # the main job on the embedded defaults
    laborlm data {import,export,validate,stats,synth} ...
    laborlm corpus {build,tokenizer} ...
    laborlm fit MODEL --panel PANEL --out DIR [--pretrain-panel RESUMES] [key=value ...]
    laborlm evaluate --model DIR --panel DIR
    laborlm predict --model models:/NAME@champion|DIR --input careers.jsonl [--top-k 5]
    laborlm registry {register,promote} ...
    laborlm benchmark {careers,llm} [--config FILE] [overrides]
    laborlm benchmark hardware [--device cpu|cuda] [--sizes ...] [--strategies ...] [--lora|--qlora] [--quick]
    laborlm sweep JOB.yaml [overrides] | laborlm sweep report SWEEP_DIR   # Ray Tune scaling studies
    laborlm cluster {up,status,down}            # a real local Ray cluster + MLflow server on loopback
    laborlm submit JOB.yaml [overrides] --address http://HEAD:8265   # Ray Job Submission; `jobs` to manage
    laborlm report --experiment NAME            # static HTML page of an MLflow experiment
    laborlm analyze {forecast,wages,subgroups,rationale} [--config FILE] [overrides]
    laborlm run JOB.yaml [key.path=value ...]   # any job YAML (jobs/*.yaml), dispatched on its `kind`
    laborlm train JOB.yaml [key.path=value ...] # language-model training (kind: train) on Ray Train
    laborlm config show CONFIG.yaml [key.path=value ...]

Each subcommand parses its arguments, calls one library function, and prints its result. Commands that run a
job (run, train, sweep, quickstart, benchmark, analyze, data synth, corpus build, fit, evaluate) turn their
flags into dotted overrides and dispatch through the job registry (``laborlm.jobs``), so each kind has one
config class and one runner whichever command starts it. A ``LaborLMError`` becomes a one-line message and
exit code 2; any other exception keeps its traceback.

The parser is built by one small function per subcommand (``_add_<command>_parser``), next to its handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from laborlm import __version__
from laborlm.errors import LaborLMError
from laborlm.jobs import ANALYSES, JOBS, Job, RunOptions, get_job, load_job

logger = logging.getLogger("laborlm")

# Quiet, offline defaults for the libraries underneath; an explicit environment setting wins.
_ENV_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_DATA_LOG_LEVEL": "WARNING",
}

Handler = Callable[[argparse.Namespace], int]


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    """Start (or connect to) Ray for a CLI command; library functions never call ``ray.init`` themselves.

    Inside a Ray job (``ray job submit``) ``RAY_ADDRESS`` names the cluster: connect to it rather than start a
    local Ray (``num_cpus`` cannot be given when connecting).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address:
        # A local Ray started for one command is private to this user and process tree: skip its token
        # auth (which would also write ~/.ray/auth_token). A cluster's own settings apply when connecting.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "0" if sys.stdout.isatty() else "1")
    from laborlm.cluster.loopback import address_host, is_loopback, local_ray_init_kwargs, pin_ray_to_loopback

    if address and is_loopback(address_host(address)):
        pin_ray_to_loopback()  # else Ray looks for a loopback cluster (`cluster up`) on the machine's address
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        # Every process of this Ray (GCS, raylet, agents, workers) listens on 127.0.0.1 only.
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            **local_ray_init_kwargs(),
        )


def _run_job(job: Job, cfg: Any, address: str | None, options: RunOptions | None = None) -> int:
    """What every job command does once it has a typed config: check the output, start Ray if the job needs
    it, run it, print what it returns. Exit status 1 when the job reports a partial failure."""
    options = options or RunOptions()
    job.check_outputs(cfg)
    for key, value in job.environment.items():
        os.environ.setdefault(key, value)
    needs = job.ray(cfg, options)
    if needs is not None:
        _init_ray(address, needs.num_cpus)
    outcome = job.run(cfg, options)
    print(outcome.text)
    return 0 if outcome.ok else 1


def _command(parent: Any, name: str, fn: Handler, help: str) -> argparse.ArgumentParser:
    """A subcommand parser whose handler is ``fn``; ``help`` is also its description."""
    sp: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
    sp.set_defaults(fn=fn)
    return sp


def _address_flag(s: argparse.ArgumentParser, help: str = "Ray cluster address (default: local Ray)") -> None:
    s.add_argument("--address", help=help)


# --- data ---------------------------------------------------------------------------------------------------


def _cmd_data_import(a: argparse.Namespace) -> int:
    from laborlm.workflows.data import import_data

    s = import_data(
        Path(a.path),
        Path(a.out),
        taxonomy=a.taxonomy,
        rejects=_opt_path(a.rejects),
        source=a.source,
        maps=_import_maps(a),
        titles=_opt_path(a.titles),
    )
    print("\n".join(s.lines()))
    print(f"panel written to {a.out}")
    return 0


def _import_maps(a: argparse.Namespace) -> Any:
    """The survey maps of `data import/validate` (laborlm.readers.recode.ImportMaps)."""
    from laborlm.readers.recode import ImportMaps

    return ImportMaps.from_flags(
        columns=a.columns,
        ignore_columns=a.ignore_columns,
        maps=a.map or (),
        states=a.states,
        two_digit_years=a.two_digit_years,
    )


def _cmd_data_export(a: argparse.Namespace) -> int:
    from laborlm.splits import SplitConfig
    from laborlm.workflows.data import export_data

    out = export_data(Path(a.panel), Path(a.out), fmt=a.format, split=SplitConfig(seed=a.split_seed))
    print(f"{a.format} export written to {out}")
    return 0


def _cmd_data_validate(a: argparse.Namespace) -> int:
    from laborlm.workflows.data import validate_data

    s = validate_data(
        Path(a.path), taxonomy=a.taxonomy, rejects=_opt_path(a.rejects), source=a.source, maps=_import_maps(a)
    )
    print("\n".join(s.lines()))
    return 0 if s.rows_rejected == 0 else 1


def _cmd_data_stats(a: argparse.Namespace) -> int:
    from laborlm.stats import format_stats
    from laborlm.workflows.data import describe_data

    stats = describe_data(Path(a.path), taxonomy=a.taxonomy)
    if a.json:
        from laborlm import jsonsafe

        print(jsonsafe.dumps(stats.to_json(), indent=2))  # an empty panel's median year is null, never NaN
    else:
        print(format_stats({Path(a.path).name: stats}))
    return 0


def _cmd_data_synth(a: argparse.Namespace) -> int:
    """``kind: synth`` with the preset as the base, the YAML over it, then overrides, then the flags."""
    from laborlm.config import build_overridden, load_yaml, to_dict
    from laborlm.errors import ConfigError
    from laborlm.synthetic import load_preset

    job = get_job("synth")
    base = to_dict(load_preset(a.preset)) if a.preset else {}
    if a.config:
        data = load_yaml(a.config)
        written = data.pop("kind", job.kind)
        if written != job.kind:
            raise ConfigError(
                f"kind: expected {job.kind!r} (a synthetic panel YAML), got {written!r}", source=a.config
            )
        base = _merge(base, data)
    flags = [f"people={a.people}"] if a.people is not None else []
    flags += [f"seed={a.seed}"] if a.seed is not None else []
    flags += [f"out_dir={a.out}"] + ([f"workers={a.workers}"] if a.workers else [])
    cls = job.config_class
    cfg: Any = build_overridden(cls, base, list(a.overrides) + flags, a.config)
    return _run_job(job, cfg, a.address)


def _add_import_maps(s: argparse.ArgumentParser) -> None:
    """A survey's own names, labels and years -> the panel schema's (laborlm.readers.recode); all counted."""
    s.add_argument(
        "--columns",
        metavar="COL=FILECOL,...",
        help="schema column = the file's column, e.g. person_id=idcode,occupation=occ_code",
    )
    s.add_argument(
        "--ignore-columns",
        metavar="FILECOL,...",
        help="file columns to leave out; '*' = every "
        "column not in the schema after --columns (they are listed in the summary)",
    )
    s.add_argument(
        "--map",
        action="append",
        metavar="COLUMN:LABEL=VALUE,...",
        help="recode a column's values (repeatable), e.g. race:1=white,2=black or "
        "education:0-11=less_than_high_school; NA = missing",
    )
    s.add_argument(
        "--states",
        metavar="LABEL=STATE,...",
        help="the survey's labels of the special states, "
        "e.g. home=out_of_labor_force,school=in_school (also in a --taxonomy file)",
    )
    s.add_argument(
        "--two-digit-years",
        type=int,
        metavar="START",
        help="read years and birth years 0..99 as START..START+99, e.g. 1900 (68 -> 1968)",
    )


def _add_data_parser(sub: Any) -> None:
    data = sub.add_parser("data", help="import, export, validate, describe and synthesise career panels")
    dsub = data.add_subparsers(dest="data_command", required=True)
    taxonomy_help = (
        "occ1990dd, infer, or a code,title CSV (default: taxonomy.csv in the input folder, else auto)"
    )

    s = _command(
        dsub,
        "import",
        _cmd_data_import,
        "read a Parquet/CSV panel or CAREER split files, validate, write a canonical panel",
    )
    s.add_argument("path")
    s.add_argument("--out", required=True, help="output panel folder")
    s.add_argument("--taxonomy", help=taxonomy_help)
    s.add_argument(
        "--rejects", help="write bad rows here (JSONL) and keep going, instead of stopping at the first"
    )
    s.add_argument(
        "--source", help="source name for inputs without a source column (default: the input's name)"
    )
    s.add_argument(
        "--titles", help="code,title CSV giving English titles to a coded taxonomy (what an LLM reads)"
    )
    _add_import_maps(s)

    s = _command(
        dsub, "export", _cmd_data_export, "write a canonical panel as CAREER split files, Parquet or CSV"
    )
    s.add_argument("panel")
    s.add_argument("--format", choices=["career", "parquet", "csv"], required=True)
    s.add_argument("--out", required=True)
    s.add_argument(
        "--split-seed", type=int, default=0, help="seed of the person-level 70/10/20 split (career format)"
    )

    s = _command(dsub, "validate", _cmd_data_validate, "check a panel; exit 1 if any row is rejected")
    s.add_argument("path")
    s.add_argument("--taxonomy", help=taxonomy_help)
    s.add_argument(
        "--rejects", help="write bad rows here (JSONL) and report counts instead of stopping at the first"
    )
    s.add_argument("--source")
    _add_import_maps(s)

    s = _command(
        dsub, "stats", _cmd_data_stats, "CAREER Table 7 statistics and yearly occupation-change shares"
    )
    s.add_argument("path")
    s.add_argument("--taxonomy", help=taxonomy_help)
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = _command(
        dsub, "synth", _cmd_data_synth, "generate a synthetic panel with its exact oracle log-likelihood"
    )
    s.add_argument("--preset", choices=["psid", "nlsy79", "nlsy97", "resumes"])
    s.add_argument("--config", help="YAML overriding the preset (see jobs/synth_*.yaml)")
    s.add_argument("--people", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--out", required=True)
    s.add_argument("--workers", type=int, help="Ray Data CPU workers (default: generate in this process)")
    _address_flag(s, "Ray cluster address (default: a local Ray started for this command)")
    s.add_argument("overrides", nargs="*", help="dotted overrides, e.g. dynamics.num_types=16")


# --- config -------------------------------------------------------------------------------------------------


def _cmd_config_show(a: argparse.Namespace) -> int:
    from laborlm.config import dump_yaml

    job, cfg = load_job(a.config, a.overrides)
    print(dump_yaml(cfg, kind=job.kind), end="")
    return 0


def _add_config_parser(sub: Any) -> None:
    config = sub.add_parser("config", help="inspect job configs")
    csub = config.add_subparsers(dest="config_command", required=True)
    s = _command(
        csub, "show", _cmd_config_show, "print the resolved config of a job YAML with overrides applied"
    )
    s.add_argument("config")
    s.add_argument("overrides", nargs="*")


# --- corpus -------------------------------------------------------------------------------------------------


def _cmd_corpus_build(a: argparse.Namespace) -> int:
    from laborlm.config import build

    job = get_job("build_corpus")
    data: dict[str, Any] = {
        "inputs": a.input,
        "out_dir": a.out,
        "template": a.template,
        "taxonomy": a.taxonomy,
        "split": {"seed": a.split_seed},
        "rows_per_shard": a.rows_per_shard,
        "max_reject_fraction": a.max_reject_fraction,
    }
    cfg: Any = build(job.config_class, data, source="command line")
    return _run_job(job, cfg, a.address, RunOptions(workers=a.workers))


def _cmd_corpus_tokenizer(a: argparse.Namespace) -> int:
    from laborlm.corpus.tokenizer import TokenizerConfig, train_tokenizer

    cfg = TokenizerConfig(
        vocab_size=a.vocab_size,
        min_frequency=a.min_frequency,
        max_documents=a.max_documents,
        label_tokens=not a.multi_token_labels,
        stay_token=not (a.multi_token_labels or a.no_stay_token),
    )
    out = train_tokenizer(a.corpus, a.out, cfg)
    print(f"tokenizer written to {out}")
    return 0


def _add_corpus_parser(sub: Any) -> None:
    corpus = sub.add_parser("corpus", help="resume-like texts from panels (Ray Data) and tokenizers")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    s = _command(
        csub,
        "build",
        _cmd_corpus_build,
        "render panels into a text corpus with a template (Ray Data); idempotent",
    )
    s.add_argument(
        "--input",
        action="append",
        required=True,
        help="panel folder or Parquet file; repeatable (sources mix)",
    )
    s.add_argument("--out", required=True, help="corpus folder")
    s.add_argument(
        "--template",
        default="labor-llm",
        help="labor-llm | codes | bare | a template YAML (default labor-llm)",
    )
    s.add_argument("--taxonomy", help="occ1990dd or a code,title CSV (default: the inputs' taxonomy.csv)")
    s.add_argument("--split-seed", type=int, default=0, help="hash split for persons without one")
    s.add_argument("--rows-per-shard", type=int, default=100_000, help="documents per output file")
    s.add_argument(
        "--max-reject-fraction", type=float, help="fail when an input loses a larger share of rows"
    )
    s.add_argument("--workers", type=int, help="Ray Data parallelism (cannot change the output)")
    _address_flag(s, "Ray cluster address (default: local Ray)")
    s = _command(
        csub, "tokenizer", _cmd_corpus_tokenizer, "train a byte-level BPE tokenizer on a corpus's train split"
    )
    s.add_argument("--corpus", required=True, help="corpus folder from `laborlm corpus build`")
    s.add_argument("--out", required=True, help="tokenizer folder (loads with AutoTokenizer.from_pretrained)")
    s.add_argument("--vocab-size", type=int, default=4096)
    s.add_argument("--min-frequency", type=int, default=2)
    s.add_argument("--max-documents", type=int, help="train on at most this many documents")
    s.add_argument(
        "--multi-token-labels",
        action="store_true",
        help="labels stay multi-token, as an off-the-shelf LLM reads them (no label or stay token)",
    )
    s.add_argument(
        "--no-stay-token",
        action="store_true",
        help="no stay token: models trained with it are plain LMs, not stay/move (llm.stay_move)",
    )


# --- run and train ------------------------------------------------------------------------------------------


def _cmd_run(a: argparse.Namespace) -> int:
    """Run any job YAML: load it strictly as its kind's config and call that kind's runner."""
    job, cfg = load_job(a.config, a.overrides)
    return _run_job(job, cfg, a.address, RunOptions(workers=a.workers))


def _add_run_parser(sub: Any) -> None:
    s = _command(sub, "run", _cmd_run, "run any job YAML (jobs/*.yaml), dispatched on its kind")
    s.description = f"{s.description}: {', '.join(sorted(JOBS))} (laborlm.jobs)"
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", help="dotted overrides, e.g. out_dir=runs/x seeds=0")
    s.add_argument("--workers", type=int, help="Ray parallelism where the job uses it")
    _address_flag(s)


def _cmd_train(a: argparse.Namespace) -> int:
    config, overrides = a.config, list(a.overrides)
    if config is not None and "=" in config and not Path(config).is_file():
        config, overrides = None, [config, *overrides]  # no YAML: the embedded defaults plus overrides
    job, cfg = load_job(config, overrides, kind="train")
    return _run_job(job, cfg, a.address)


def _add_train_parser(sub: Any) -> None:
    s = _command(
        sub,
        "train",
        _cmd_train,
        "train a language model on Ray Train (DDP or DeepSpeed ZeRO; pretrain and/or fine-tune)",
    )
    s.add_argument("config", nargs="?", help="a kind: train YAML (see jobs/train_*.yaml); none: the defaults")
    s.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. strategy.kind=zero3 finetune.lora=true"
    )
    _address_flag(s)


# --- models -------------------------------------------------------------------------------------------------


def _cmd_fit(a: argparse.Namespace) -> int:
    from laborlm.config import build_overridden

    job = get_job("fit")
    data: dict[str, Any] = {
        "model": a.model,
        "panel": a.panel,
        "out": a.out,
        "pretrain_panel": a.pretrain_panel,
        "tracking": {"enabled": not a.no_mlflow, "tracking_uri": a.tracking_uri},
    }
    cls = job.config_class
    cfg: Any = build_overridden(cls, data, list(a.overrides), "command line")
    return _run_job(job, cfg, a.address)


def _add_fit_parser(sub: Any) -> None:
    s = _command(
        sub,
        "fit",
        _cmd_fit,
        "fit a registry model on a panel's train split (valid for early stopping); save it",
    )
    s.add_argument(
        "model",
        help="registry name: unigram, markov1, markov2, regression-two_stage, "
        "career-small-two_stage, ...; or embedding with lm=DIR (a two-stage head on a trained "
        "language model's hidden states; lm_init=random: its control on a random LM)",
    )
    s.add_argument(
        "--panel",
        required=True,
        help="panel to fit on (from `laborlm data import`, Parquet/CSV, CAREER files)",
    )
    s.add_argument(
        "--out", required=True, help="the saved model folder (evaluate, predict, registry register, analyze)"
    )
    s.add_argument(
        "--pretrain-panel", help="resume panel to pretrain a neural model (CAREER) on first; same taxonomy"
    )
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite beside the output folder)")
    s.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    _address_flag(s, "Ray cluster address when fit.num_workers is set (default: local Ray)")
    s.add_argument(
        "overrides",
        nargs="*",
        help="dotted overrides, e.g. seed=1 split_seed=0 fit.max_epochs=10 fit.num_workers=2",
    )
    s.set_defaults(trailing_overrides=True)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from laborlm.config import build

    job = get_job("evaluate")
    data: dict[str, Any] = {
        "model": a.model,
        "panel": a.panel,
        "split": None if a.split == "all" else a.split,
        "split_seed": a.split_seed,
        "out": a.out,
        "tracking": {"enabled": not a.no_mlflow, "tracking_uri": a.tracking_uri},
    }
    try:
        return _run_job(job, build(job.config_class, data, source="command line"), None)
    except LaborLMError as exc:  # evaluate takes no overrides: name its flags, not the config keys they set
        text = (
            str(exc)
            .replace("tracking.tracking_uri", "--tracking-uri")
            .replace("set tracking.enabled=false", "pass --no-mlflow")
        )
        if text == str(exc):
            raise
        raise LaborLMError(text) from exc


def _add_evaluate_parser(sub: Any) -> None:
    s = _command(
        sub,
        "evaluate",
        _cmd_evaluate,
        "score a saved model on a panel split; write metrics.json; log to MLflow",
    )
    s.add_argument("--model", required=True, help="saved model folder")
    s.add_argument("--panel", required=True, help="panel to score")
    s.add_argument("--split", default="test", choices=["train", "valid", "test", "all"])
    s.add_argument("--split-seed", type=int, default=0)
    s.add_argument("--out", help="metrics.json path (default: in the model folder)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite next to the metrics file)")
    s.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")


def _cmd_predict(a: argparse.Namespace) -> int:
    """Top-k next occupations for each career of a JSONL file (schema: laborlm.serving.careers)."""
    from laborlm.serving.careers import CareerInputError, predict_careers, read_careers
    from laborlm.serving.registry import load_predictor

    careers, lines = read_careers(a.input)
    model = load_predictor(a.model, a.tracking_uri)
    try:
        predictions = predict_careers(model, careers, a.top_k)
    except CareerInputError as exc:
        raise exc.located(a.input, lines) from None
    from laborlm import jsonsafe

    text = "".join(jsonsafe.dumps(p) + "\n" for p in predictions)
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")
        print(f"{len(predictions)} predictions written to {a.out}")
    else:
        print(text, end="")
    return 0


def _add_predict_parser(sub: Any) -> None:
    s = _command(
        sub,
        "predict",
        _cmd_predict,
        "top-k next occupations of JSON careers from a registered or saved model",
    )
    s.add_argument(
        "--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION, or a saved model folder"
    )
    s.add_argument("--input", required=True, help="careers, one JSON object a line ('-' reads stdin)")
    s.add_argument("--top-k", type=int, default=5, help="occupations per career (default 5)")
    s.add_argument("--tracking-uri", help="MLflow store of a models:/ URI (default: $MLFLOW_TRACKING_URI)")
    s.add_argument("--out", help="write predictions here (JSONL; default stdout)")


def _cmd_registry_register(a: argparse.Namespace) -> int:
    from laborlm.serving.registry import register_model

    version = register_model(a.model_dir, a.name, a.tracking_uri, alias=a.alias)
    print(f"registered {a.name} version {version} as @{a.alias}: models:/{a.name}@{a.alias}")
    return 0


def _cmd_registry_promote(a: argparse.Namespace) -> int:
    from laborlm.serving.registry import promote

    promote(a.name, a.version, alias=a.alias, tracking_uri=a.tracking_uri)
    print(f"models:/{a.name}@{a.alias} -> version {a.version}")
    return 0


def _add_registry_parser(sub: Any) -> None:
    reg = sub.add_parser("registry", help="the MLflow model registry: register saved models, move aliases")
    rsub = reg.add_subparsers(dest="registry_command", required=True)
    s = _command(
        rsub, "register", _cmd_registry_register, "log a saved model folder as a pyfunc model and register it"
    )
    s.add_argument(
        "model_dir", help="any saved LaborLM model folder (laborlm fit or train, llm/, benchmarks, oracle)"
    )
    s.add_argument("name", help="registered model name")
    s.add_argument("--alias", default="candidate", help="alias of the new version (default candidate)")
    s.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI)")
    s = _command(
        rsub, "promote", _cmd_registry_promote, "point an alias (default champion) at a registered version"
    )
    s.add_argument("name")
    s.add_argument("version")
    s.add_argument("--alias", default="champion")
    s.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI)")


# --- benchmarks ---------------------------------------------------------------------------------------------


def _cmd_benchmark_careers(a: argparse.Namespace) -> int:
    overrides = list(a.overrides) + ([f"presets={','.join(a.preset)}"] if a.preset else [])
    if a.panel:  # a JSON list: paths may hold commas
        overrides.append(f"panels={json.dumps(a.panel)}")
    if a.resumes:
        overrides.append(f"resumes={a.resumes}")
    job, cfg = load_job(a.config, overrides, kind="benchmark_careers")
    return _run_job(job, cfg, a.address)


def _cmd_benchmark_llm(a: argparse.Namespace) -> int:
    job, cfg = load_job(a.config, list(a.overrides), kind="benchmark_llm")
    return _run_job(job, cfg, a.address)


def _cmd_benchmark_hardware(a: argparse.Namespace) -> int:
    flags = {
        "device": a.device,
        "sizes": a.sizes,
        "strategies": a.strategies,
        "seconds": a.seconds,
        "out_dir": a.out,
        "mode": "qlora" if a.qlora else "lora" if a.lora else None,
        "quick": "true" if a.quick else None,
        "tracking.enabled": "false" if a.no_mlflow else None,
    }
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(a.overrides)
    # GPU-only options on CPU: a ConfigError (rc 2) here, before Ray starts
    job, cfg = load_job(a.config, overrides, kind="benchmark_hardware")
    return _run_job(job, cfg, a.address)


def _add_benchmark_parser(sub: Any) -> None:
    bench = sub.add_parser("benchmark", help="reproduce the papers' comparison tables")
    bsub = bench.add_subparsers(dest="benchmark_command", required=True)
    s = _command(
        bsub,
        "careers",
        _cmd_benchmark_careers,
        "CAREER's Figure 2a table on synthetic surveys (with the oracle) and on your own panels",
    )
    s.add_argument(
        "--preset",
        action="append",
        help="a synthetic survey: psid, nlsy79 or nlsy97; repeatable; default psid unless --panel is given",
    )
    s.add_argument(
        "--panel",
        action="append",
        metavar="DIR",
        help="your panel (a `laborlm data import` folder), one column named after the folder; repeatable",
    )
    s.add_argument(
        "--resumes",
        metavar="DIR",
        help="resume panel the +pretrain rows pretrain on (needed "
        "with --panel; its codes must be the panels'); default: the synthetic resume corpus",
    )
    s.add_argument("--config", help="YAML (see jobs/benchmark_careers*.yaml)")
    _address_flag(s)
    s.add_argument("overrides", nargs="*", help="dotted overrides, e.g. seeds=0 survey_people=1000")

    s = _command(
        bsub,
        "llm",
        _cmd_benchmark_llm,
        "LABOR-LLM's comparisons (fine-tuning, titles vs codes, pooled data, size vs data)",
    )
    s.add_argument("--config", help="YAML (see jobs/benchmark_llm.yaml)")
    _address_flag(s)
    s.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. arms=fine-tuned,codes pretrain_steps=100"
    )

    s = _command(
        bsub,
        "hardware",
        _cmd_benchmark_hardware,
        "training tokens/s, memory and MFU by model size and strategy, and the scorer's speed, on CPU or GPU",
    )
    s.add_argument("--device", choices=["cpu", "cuda"], help="default cpu")
    s.add_argument(
        "--sizes", metavar="SIZE,...", help="model sizes, e.g. llama-1m,llama-10m (default: the device's set)"
    )
    s.add_argument(
        "--strategies",
        metavar="NAME,...",
        help="ddp, zero2, zero3, zero3_offload (default: the device's set)",
    )
    mode = s.add_mutually_exclusive_group()
    mode.add_argument("--lora", action="store_true", help="train LoRA adapters instead of every weight")
    mode.add_argument("--qlora", action="store_true", help="LoRA on 4-bit base weights (CUDA, ddp only)")
    s.add_argument("--seconds", type=float, help="timed seconds per cell after warm-up")
    s.add_argument("--quick", action="store_true", help="the device's small first-look set")
    s.add_argument("--out", help="output folder (default runs/benchmark_hardware)")
    s.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    s.add_argument("--config", help="YAML of HardwareBenchmarkConfig fields")
    _address_flag(s)
    s.add_argument(
        "overrides",
        nargs="*",
        help="dotted overrides, e.g. precision=bf16 optim_impl=deepspeed num_workers=1",
    )


# --- sweeps and analyses ------------------------------------------------------------------------------------


def _cmd_sweep(a: argparse.Namespace) -> int:
    from laborlm.errors import ConfigError

    if a.target == "report":
        from laborlm.sweeps.fit import write_report

        if len(a.rest) != 1:
            raise ConfigError("usage: laborlm sweep report SWEEP_FOLDER")
        print(write_report(Path(a.rest[0])).read_text(), end="")
        return 0
    job, cfg = load_job(a.target, list(a.rest), kind="sweep")
    return _run_job(job, cfg, a.address)


def _add_sweep_parser(sub: Any) -> None:
    s = _command(
        sub,
        "sweep",
        _cmd_sweep,
        "Ray Tune scaling studies (data volume x model size, ASHA); `sweep report DIR` fits power laws",
    )
    s.add_argument("target", help="a sweep YAML (jobs/sweep_*.yaml), or `report`")
    s.add_argument(
        "rest", nargs="*", help="dotted overrides (e.g. seeds=0,1), or the sweep folder after `report`"
    )
    _address_flag(s)


def _cmd_analyze(a: argparse.Namespace) -> int:
    """Load the config (YAML + overrides) as the analysis's job and run it; prints its report and folder."""
    job, cfg = load_job(a.config, list(a.overrides), kind=f"analyze_{a.analyze_command}")
    return _run_job(job, cfg, None)


def _add_analyze_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "analyze",
        help="the papers' downstream analyses: forecasting, wages, subgroups, rationales",
        description="The papers' downstream analyses for every model, on synthetic or real panels.",
    )
    kinds = parser.add_subparsers(dest="analyze_command", required=True)
    for analysis in ANALYSES:
        s = _command(kinds, analysis, _cmd_analyze, JOBS[f"analyze_{analysis}"].description)
        s.add_argument(
            "--config", help="YAML with any AnalyzeConfig section (data, models, fit, forecast, ...)"
        )
        s.add_argument(
            "overrides", nargs="*", help="dotted overrides, e.g. models=oracle,markov1 forecast.samples=200"
        )


def _cmd_report(a: argparse.Namespace) -> int:
    from laborlm.tracking.report import write_report_page

    print(write_report_page(a.experiment, a.tracking_uri, _opt_path(a.out)))
    return 0


def _add_report_parser(sub: Any) -> None:
    s = _command(
        sub,
        "report",
        _cmd_report,
        "a static HTML page of an MLflow experiment: runs, comparisons, scaling laws, models",
    )
    s.add_argument("--experiment", required=True, help="MLflow experiment name")
    s.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI)")
    s.add_argument("--out", help="output folder for index.html (default: runs/report/<experiment>)")


def _cmd_quickstart(a: argparse.Namespace) -> int:
    overrides = list(a.overrides) + ([f"size={a.size}"] if a.size else [])
    job, cfg = load_job(a.config, overrides, kind="quickstart")
    return _run_job(job, cfg, a.address)


def _add_quickstart_parser(sub: Any) -> None:
    s = _command(
        sub,
        "quickstart",
        _cmd_quickstart,
        "the whole pipeline on the embedded defaults (local Ray, synthetic data)",
    )
    s.add_argument("--config", help="YAML overriding the embedded defaults")
    s.add_argument(
        "--size",
        choices=["tiny", "small", "medium"],
        help="tiny (default, ~9 min on 2 cores), small (more data and steps, ~36 min), "
        "medium (a larger model: GPUs)",
    )
    _address_flag(s)
    s.add_argument("overrides", nargs="*", help="dotted overrides, e.g. survey_people=5000 register_as=null")


# --- clusters and submitted jobs ----------------------------------------------------------------------------


def _cmd_cluster(a: argparse.Namespace) -> int:
    from laborlm.cluster import local

    folder = Path(a.folder)
    if a.cluster_command == "up":
        cfg = local.ClusterConfig(
            folder=folder,
            host=a.host,
            ray_port=a.ray_port,
            dashboard_port=a.dashboard_port,
            mlflow_port=a.mlflow_port,
            client_port=a.client_port,
            head_cpus=a.num_cpus,
            workers=a.workers,
            worker_cpus=a.worker_cpus,
            mlflow=not a.no_mlflow,
        )
        state = local.up(cfg)
        print(f"Ray:    {state.ray_address}  (dashboard and job API {state.dashboard_url})")
        if state.mlflow_uri:
            print(f"MLflow: {state.mlflow_uri}")
        print("for clients:  " + " ".join(f"export {k}={v};" for k, v in state.env.items()))
        print(f"submit:       laborlm submit jobs/quickstart.yaml --address {state.dashboard_url}")
        return 0
    if a.cluster_command == "down":
        stopped = local.down(folder)
        print("stopped: " + (", ".join(stopped) or "nothing was running"))
        return 0
    info = local.status(folder)
    print(json.dumps(info, indent=2))
    return 0 if info["running"] else 1


def _add_cluster_parser(sub: Any) -> None:
    cl = sub.add_parser(
        "cluster", help="a real local Ray cluster + MLflow server on loopback (up, status, down)"
    )
    clsub = cl.add_subparsers(dest="cluster_command", required=True)
    s = _command(
        clsub, "up", _cmd_cluster, "ray start --head (+ --workers nodes) and an MLflow server (SQLite)"
    )
    s.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; others warn)")
    s.add_argument("--ray-port", type=int, default=6379)
    s.add_argument("--dashboard-port", type=int, default=8265)
    s.add_argument("--mlflow-port", type=int, default=5000)
    s.add_argument(
        "--client-port", type=int, default=10001, help="Ray Client server (on --host, like the rest)"
    )
    s.add_argument("--num-cpus", type=int, help="logical CPUs of the head (default: the machine's)")
    s.add_argument("--workers", type=int, default=0, help="extra Ray nodes on this machine")
    s.add_argument("--worker-cpus", type=int, default=1)
    s.add_argument("--no-mlflow", action="store_true", help="Ray only")
    for name, help_text in (
        ("status", "what runs, Ray nodes alive, MLflow health"),
        ("down", "stop exactly what `up` started"),
    ):
        _command(clsub, name, _cmd_cluster, help_text)
    for parser in clsub.choices.values():
        parser.add_argument(
            "--folder", default="runs/cluster", help="state, logs and MLflow data (default runs/cluster)"
        )


def _cmd_submit(a: argparse.Namespace) -> int:
    from laborlm.cluster.submit import submit

    result = submit(
        Path(a.config),
        a.overrides,
        address=a.address,
        working_dir=_opt_path(a.working_dir),
        pip=_opt_path(a.pip),
        env_names=a.env or (),
        wait=not a.no_wait,
        follow=None if a.no_wait or a.quiet_logs else sys.stdout,
        timeout=a.timeout,
    )
    print(f"job {result.job_id}: {result.status or 'submitted'}  ({result.entrypoint})")
    return 0 if result.status in (None, "SUCCEEDED") else 1


def _add_submit_parser(sub: Any) -> None:
    s = _command(
        sub, "submit", _cmd_submit, "submit a job YAML to a Ray cluster (Job Submission API) and follow it"
    )
    s.add_argument("config", help="job YAML under the working directory, e.g. jobs/train_tiny.yaml")
    s.add_argument("overrides", nargs="*", help="dotted overrides for the job")
    s.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
        help="the cluster's dashboard URL (default $RAY_ADDRESS or http://127.0.0.1:8265)",
    )
    s.add_argument("--working-dir", help="uploaded with the job (default: the current directory)")
    s.add_argument(
        "--pip", help="a pinned requirements file installed into the job's environment (constraints.txt)"
    )
    s.add_argument(
        "--env", action="append", help="forward this environment variable (repeatable; values never logged)"
    )
    s.add_argument("--no-wait", action="store_true", help="return after submitting")
    s.add_argument("--quiet-logs", action="store_true", help="wait without streaming the job's logs")
    s.add_argument("--timeout", type=float, help="stop the job after this many seconds")


def _cmd_jobs(a: argparse.Namespace) -> int:
    from ray.job_submission import JobSubmissionClient

    from laborlm.cluster.submit import wait_for

    client = JobSubmissionClient(a.address)
    if a.jobs_command == "status":
        print(client.get_job_status(a.job_id).value)
    elif a.jobs_command == "logs":
        if a.follow:
            wait_for(client, a.job_id, follow=sys.stdout)
        else:
            print(client.get_job_logs(a.job_id), end="")
    else:
        print("stopped" if client.stop_job(a.job_id) else "not running")
    return 0


def _add_jobs_parser(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="status, logs or stop of a submitted job")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True)
    for name in ("status", "logs", "stop"):
        s = _command(jsub, name, _cmd_jobs, f"the job's {name}" if name != "stop" else "stop the job")
        s.add_argument("job_id")
        s.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"))
        if name == "logs":
            s.add_argument("--follow", action="store_true", help="stream until the job ends")


# --- plumbing -----------------------------------------------------------------------------------------------


# Every output flag: (command, subcommand) -> {argparse dest: "file" | "folder" | "path" (either)}. main()
# checks them before the command runs (laborlm.paths.check_output), so an unwritable output is a one-line
# error (rc 2), never a traceback after the work is done. tests/unit/core/test_output_paths.py walks every
# command's flags.
# (A job's own out_dir is checked by Job.check_outputs once its config is loaded.)
_OUTPUT_FLAGS: dict[tuple[str, str | None], dict[str, str]] = {
    ("data", "import"): {"out": "folder", "rejects": "file"},
    ("data", "validate"): {"rejects": "file"},
    ("data", "export"): {"out": "path"},  # a folder, or one file for --format csv
    ("data", "synth"): {"out": "folder"},
    ("corpus", "build"): {"out": "folder"},
    ("corpus", "tokenizer"): {"out": "folder"},
    ("fit", None): {"out": "folder"},
    ("evaluate", None): {"out": "file"},
    ("predict", None): {"out": "file"},
    ("report", None): {"out": "folder"},
    ("benchmark", "hardware"): {"out": "folder"},
}


def _check_outputs(a: argparse.Namespace) -> None:
    from laborlm.paths import check_output

    command: str = a.command
    subcommand: str | None = getattr(a, f"{command}_command", None)
    for dest, kind in _OUTPUT_FLAGS.get((command, subcommand), {}).items():
        if getattr(a, dest, None):
            check_output(Path(getattr(a, dest)), kind, f"--{dest.replace('_', '-')}")


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global flags, then one ``_add_<command>_parser`` per subcommand."""
    p = argparse.ArgumentParser(
        prog="laborlm", description="Predict careers with language models (CAREER, LABOR-LLM) on Ray."
    )
    p.add_argument("--version", action="version", version=f"laborlm {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (
        _add_data_parser,
        _add_config_parser,
        _add_corpus_parser,
        _add_run_parser,
        _add_train_parser,
        _add_fit_parser,
        _add_evaluate_parser,
        _add_predict_parser,
        _add_registry_parser,
        _add_benchmark_parser,
        _add_cluster_parser,
        _add_submit_parser,
        _add_jobs_parser,
        _add_sweep_parser,
        _add_analyze_parser,
        _add_report_parser,
        _add_quickstart_parser,
    ):
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    for k, v in _ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    trailing = all("=" in e and not e.startswith("-") for e in extra)
    if extra and getattr(args, "trailing_overrides", False) and trailing:
        # `laborlm fit MODEL --panel P --out D key=value`: overrides after the options
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(-1 if args.quiet else args.verbose)
    try:
        _check_outputs(args)
        return int(args.fn(args))
    except LaborLMError as exc:
        print(f"laborlm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("laborlm: interrupted", file=sys.stderr)
        return 130
