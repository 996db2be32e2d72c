"""MLflow runs of a training workflow: opened (or reopened) by the driver, written to by rank 0.

Why not ``MlflowTracker`` alone: a phase's MLflow run must outlive its Ray Train workers. The driver opens
it once, by a deterministic name; rank 0 of every worker-group attempt (first start, restarts after a
failure) attaches to the same run id and keeps logging. Re-running the same config reattaches to the
unfinished run of that name instead of starting a second one, so a resumed job keeps one metric history.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from laborlm.tracking.mlflow_tracker import TrackingConfig, default_uri, mlflow_key
from laborlm.tracking.params import loggable_dict, loggable_params

logger = logging.getLogger(__name__)

_MAX_PARAM_LEN = 6000


class AttachedRun:
    """A ``Tracker`` writing to an existing MLflow run (rank 0 of a training phase, or the driver)."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.run_id: str | None = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(str(self.run_id)).data.params
        # Params are immutable in MLflow: a restarted worker group logs only what is not there yet.
        items = [Param(mlflow_key(k), str(v)[:_MAX_PARAM_LEN]) for k, v in loggable_params(params).items()
                 if mlflow_key(k) not in existing]
        for i in range(0, len(items), 100):
            self.client.log_batch(str(self.run_id), params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(mlflow_key(k), float(v), ts, step or 0) for k, v in metrics.items()]
        self.client.log_batch(str(self.run_id), metrics=items)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(str(self.run_id), str(path), artifact_path)
        else:
            self.client.log_artifact(str(self.run_id), str(path), artifact_path)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        self.client.log_dict(str(self.run_id), loggable_dict(data), name)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(str(self.run_id), status=status)


def open_run(config: TrackingConfig, run_dir: Path, run_name: str, parent_run_id: str | None = None,
             tags: Mapping[str, str] | None = None) -> AttachedRun:
    """The unfinished run called ``run_name`` in the experiment (reopened), or a new one.

    A run that FINISHED is never reused: re-running a completed job records a new run.
    """
    from mlflow.tracking import MlflowClient

    uri = config.tracking_uri or default_uri(run_dir)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(config.experiment)
    if exp is None:
        location = (run_dir / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite") else None
        exp_id = client.create_experiment(config.experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    name = run_name.replace("'", "")
    found = client.search_runs([exp_id], filter_string=f"attributes.run_name = '{name}'",
                               order_by=["attributes.start_time DESC"], max_results=5)
    for run in found:
        if run.info.status in ("RUNNING", "FAILED", "KILLED"):
            client.update_run(run.info.run_id, status="RUNNING")
            logger.info("MLflow run %s (%s) reopened at %s", run_name, run.info.run_id, uri)
            return AttachedRun(uri, run.info.run_id)
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp_id, run_name=run_name, tags=all_tags)
    logger.info("MLflow run %s (%s) at %s", run_name, run.info.run_id, uri)
    return AttachedRun(uri, run.info.run_id)
