"""No `tracking.*` param and no secret value ever reaches MLflow, through any params-logging path (issue 16, defect 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from laborlm.config import flatten, load_config
from laborlm.tracking.params import REDACTED, is_secret_key, loggable_dict, loggable_params

REPO = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-Value"  # never to be found in a param or a logged config
LEAKY_URI = f"https://alice:{SECRET}@mlflow.example.org"


def test_rules_drop_tracking_redact_secret_keys_and_url_credentials() -> None:
    params = {
        "tracking.tracking_uri": LEAKY_URI,
        "tracking.experiment": "x",
        "pretrain.tracking.enabled": True,
        "hf_token": SECRET,
        "data.apiKey": SECRET,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "db.password": SECRET,
        "store": f"s3://key:{SECRET}@bucket/path",
        "train.lr": 3e-4,
        "tokenizer_vocab_size": 512,
        "max_tokens": 1000,
        "model.name": "career",
        "empty_token": "",
    }
    out = loggable_params(params)
    assert not [k for k in out if "tracking" in k]
    assert {out[k] for k in ("hf_token", "data.apiKey", "AWS_SECRET_ACCESS_KEY", "db.password")} == {REDACTED}
    assert out["store"] == f"s3://{REDACTED}@bucket/path"
    assert out["train.lr"] == 3e-4 and out["tokenizer_vocab_size"] == 512 and out["max_tokens"] == 1000
    assert out["model.name"] == "career" and out["empty_token"] == ""  # nothing to hide in an empty value
    assert SECRET not in str(out)
    assert not any(
        map(is_secret_key, ("tokenizer", "tokens", "train/tokens", "throughput/tokens_per_s", "seed"))
    )

    nested = loggable_dict(
        {
            "tracking": {"tracking_uri": LEAKY_URI},
            "model": {"api_key": SECRET, "size": "tiny"},
            "paths": [LEAKY_URI.replace("https", "http")],
        }
    )
    assert nested == {
        "model": {"api_key": REDACTED, "size": "tiny"},
        "paths": [f"http://{REDACTED}@mlflow.example.org"],
    }


def _train_config() -> object:
    """A real job config whose flattened form (what analyze, benchmarks, sweeps and training log) holds a
    tracking URI with credentials."""
    from laborlm.training.config import TrainConfig

    return load_config(TrainConfig, REPO / "jobs" / "train_tiny.yaml", [f"tracking.tracking_uri={LEAKY_URI}"])


def _scan(uri: str, run_ids: list[str], tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for run_id in run_ids:
        params = client.get_run(run_id).data.params
        assert params, f"run {run_id} logged no params"
        assert "seed" in params or "sweep.trial" in params
        leaked = {
            k: v
            for k, v in params.items()
            if k.split(".")[0] == "tracking" or ".tracking." in k or SECRET in v or "alice" in v
        }
        assert not leaked, f"run {run_id} logged {leaked}"
        assert params.get("hf_token") == REDACTED
        for artifact in client.list_artifacts(run_id):
            if artifact.path.endswith((".yaml", ".json")):
                text = Path(client.download_artifacts(run_id, artifact.path, str(tmp_path))).read_text()
                assert SECRET not in text and "tracking_uri" not in text, artifact.path


def test_every_params_logging_path_keeps_tracking_and_secrets_out_of_mlflow(tmp_path: Path) -> None:
    """MlflowTracker (evaluate, benchmarks, analyze) and the training/sweep runs (open_run + AttachedRun, as the
    driver and rank 0 use them), each given the flattened config plus a secret-named param."""
    from laborlm.config import to_dict
    from laborlm.tracking.mlflow_tracker import AttachedRun, MlflowTracker, TrackingConfig, open_run

    cfg = _train_config()
    params = {**flatten(cfg), "hf_token": SECRET}
    assert params["tracking.tracking_uri"] == LEAKY_URI  # what the old code logged as it was
    # The runs themselves go to a local store; the config only names where they would have gone.
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="redaction")

    tracker = MlflowTracker(tracking, run_name="evaluate-like", run_dir=tmp_path)
    tracker.log_params(params)
    tracker.log_dict(to_dict(cfg), "config.yaml")
    tracker.finish()

    parent = open_run(
        tracking, tmp_path, "train-like"
    )  # the driver: a training phase's or a sweep's parent run
    parent.log_params(params)
    rank0 = AttachedRun(str(parent.tracking_uri), str(parent.run_id))  # rank 0 attaching to the same run
    rank0.log_params({**params, "resolved.world_size": 2})
    rank0.log_dict(to_dict(cfg), "config.yaml")
    trial = open_run(tracking, tmp_path, "trial-like", parent_run_id=parent.run_id)
    trial.log_params(
        {
            "sweep.trial": "t0",
            "sweep.tracking.tracking_uri": LEAKY_URI,
            "sweep.hf_token": SECRET,
            "hf_token": SECRET,
        }
    )
    for run in (parent, trial):
        run.finish()

    _scan(str(tracking.tracking_uri), [str(tracker.run_id), str(parent.run_id), str(trial.run_id)], tmp_path)


@pytest.mark.parametrize(
    "key", ["password", "OPENAI_API_KEY", "gitCredentials", "auth.bearer_token", "x/secret"]
)
def test_secret_named_keys(key: str) -> None:
    assert is_secret_key(key)
