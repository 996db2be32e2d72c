"""The one MLflow seam (issue 17 item 5): public MLflow API only, one run implementation, a store that refuses a
record still fails loudly while an unreachable one only delays it."""

from __future__ import annotations

import gc
import logging
import os
import re
from pathlib import Path

import mlflow
import pytest

from laborlm.tracking.mlflow_tracker import (
    AttachedRun,
    MlflowTracker,
    TrackingConfig,
    is_unreachable,
    mlflow_uri,
    open_run,
)

PACKAGE = Path(__file__).resolve().parents[3] / "platform" / "laborlm"


def test_no_private_mlflow_module_is_imported_and_mlflow_lives_in_tracking() -> None:
    private = re.compile(r"\bmlflow(\.\w+)*\._\w+")
    offenders = [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert not offenders, offenders
    assert not (PACKAGE / "training" / "mlflow_run.py").exists()
    defining = [
        p.relative_to(PACKAGE)
        for p in PACKAGE.rglob("*.py")
        if re.search(r"^_MAX_PARAM_LEN\s*=", p.read_text(), re.MULTILINE)
    ]
    assert defining == [Path("tracking/mlflow_tracker.py")]


def test_mlflow_uri_puts_back_explicitly_set_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    outer, registry = f"sqlite:///{tmp_path / 'outer.db'}", f"sqlite:///{tmp_path / 'registry.db'}"
    mlflow.set_tracking_uri(outer)
    mlflow.set_registry_uri(registry)
    try:
        with mlflow_uri(f"sqlite:///{tmp_path / 'inner.db'}"):
            assert mlflow.get_registry_uri().endswith("inner.db")
        assert mlflow.get_tracking_uri() == outer and mlflow.get_registry_uri() == registry
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        # Not monkeypatch.delenv: it would record the value set_tracking_uri wrote and put it back at teardown,
        # leaking this test's store into every later test's default_uri.
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    # A registry that followed the tracking URI follows it again after a block.
    with mlflow_uri(f"sqlite:///{tmp_path / 'inner.db'}"):
        pass
    assert mlflow.get_registry_uri() == mlflow.get_tracking_uri()


def test_fresh_and_reopened_runs_share_one_implementation(tmp_path: Path) -> None:
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="seam")
    fresh = MlflowTracker(tracking, run_name="evaluate-x", run_dir=tmp_path)
    assert isinstance(fresh, AttachedRun)
    fresh.log_params({"a": 1, "b+c": "x" * 7000})  # an invalid key character is mapped, a long value cut
    fresh.log_params({"a": 1})  # already there with the same value: skipped, no MLflow error
    fresh.log_metrics({f"m{i}": float(i) for i in range(1200)}, step=3)  # more than one batch
    fresh.finish()
    run = fresh.client.get_run(str(fresh.run_id))
    assert (
        run.info.status == "FINISHED"
        and run.data.params["b_c"] == "x" * 6000
        and len(run.data.metrics) == 1200
    )

    opened = open_run(tracking, tmp_path, "train-x")
    opened.finish("FAILED")
    again = open_run(tracking, tmp_path, "train-x")  # an unfinished run of that name is reopened
    assert again.run_id == opened.run_id and again.pending == 0
    again.finish()
    assert open_run(tracking, tmp_path, "train-x").run_id != opened.run_id  # a FINISHED run is never reused


def test_a_refused_record_raises_and_an_unreachable_store_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow.exceptions import MlflowException, RestException

    http, sqlite = "http://127.0.0.1:5000", f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert not is_unreachable(
        RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}), http
    )
    assert is_unreachable(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}), http)
    assert is_unreachable(MlflowException(f"API request to {http}/api failed with exception ..."), http)
    assert not is_unreachable(MlflowException("Python int too large to convert to SQLite INTEGER"), sqlite)
    assert is_unreachable(MlflowException("(sqlite3.OperationalError) database is locked"), sqlite)
    assert is_unreachable(ConnectionRefusedError(), http)

    tracking = TrackingConfig(tracking_uri=sqlite, experiment="seam")
    run = MlflowTracker(tracking, run_name="refused", run_dir=tmp_path)
    with pytest.raises(MlflowException):
        run.log_metrics({"x": 1.0}, step=-(2**70))  # out of range: the store refuses it, a bug to surface

    # Nothing listens on port 9 of loopback: every call is kept, none raises, one warning names the store.
    gone = AttachedRun("http://127.0.0.1:9", "0" * 32, retry_interval_s=0.0)
    with caplog.at_level(logging.WARNING, logger="laborlm.tracking.mlflow_tracker"):
        gone.log_params({"a": 1})
        for step in range(5):
            gone.log_metrics({"train/loss": 1.0}, step=step)
        gone.log_artifact(tmp_path / "missing.txt")
        gone.finish()
    assert gone.pending == 8
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("unreachable (" in w for w in warnings) == 1
    assert sum("8 records not logged" in w and "stays RUNNING" in w for w in warnings) == 1

    # Rank 0 of a training phase never calls finish() (the driver does): dropping it still says what was lost.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="laborlm.tracking.mlflow_tracker"):
        rank0 = AttachedRun("http://127.0.0.1:9", "1" * 32)
        rank0.log_metrics({"train/loss": 1.0}, step=7)
        del rank0
        gc.collect()
    assert "1 records not logged (metrics at step 7)" in caplog.text


def test_a_store_down_at_the_start_stops_a_job_but_not_a_nested_run(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import time

    from laborlm.errors import LaborLMError

    down = TrackingConfig(tracking_uri="http://127.0.0.1:9", experiment="seam")  # nothing listens on port 9
    start = time.monotonic()
    with pytest.raises(LaborLMError, match="does not answer; start it"):
        open_run(down, tmp_path, "train-top")
    with pytest.raises(LaborLMError, match="does not answer"):
        MlflowTracker(down, run_name="evaluate-x", run_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="laborlm.tracking.mlflow_tracker"):
        child = open_run(down, tmp_path, "train-top-finetune", parent_run_id="0" * 32)
    assert child.run_id is None and "not tracked" in caplog.text
    child.log_metrics({"x": 1.0}, step=1)
    child.finish()
    assert child.pending == 0
    assert time.monotonic() - start < 10  # no minutes of MLflow client retries
