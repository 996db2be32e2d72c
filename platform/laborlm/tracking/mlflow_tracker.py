"""MLflow implementation of ``Tracker``. The default store is a local SQLite file, any tracking URI works.

Why a SQLite default rather than MLflow's ``./mlruns`` file store: the model registry needs a database
backend, and the same file can later be served by ``mlflow server`` for the UI.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laborlm.tracking.params import loggable_dict, loggable_params

logger = logging.getLogger(__name__)

_MAX_PARAM_LEN = 6000  # MLflow's limit on a param value


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True  # false: log nothing (NullTracker)
    tracking_uri: str | None = None  # None: sqlite:///<run dir>/mlflow.db; or http://127.0.0.1:5000, ...
    experiment: str = "laborlm"  # MLflow experiment name


def default_uri(run_dir: Path) -> str:
    """Where a job logs when its config names no tracking URI: ``MLFLOW_TRACKING_URI`` when the environment sets
    it (a cluster's shared server: ``laborlm cluster up``, the manifests in cluster/), else a SQLite file in the
    job's own folder, so a laptop run needs no server."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


@contextmanager
def mlflow_uri(uri: str | None) -> Iterator[None]:
    """Point MLflow's global tracking and registry URIs (its fluent API) at ``uri`` for one block.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment, where it would outlive
    the block, reach every subprocess and Ray job started later, and (through :func:`default_uri`) redirect
    later runs to a server that may be gone. The previous URIs and environment are restored on exit. None
    leaves MLflow's own default in place.
    """
    if not uri:
        yield
        return
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    # What was set explicitly (None: MLflow's own resolution), not the resolved values, so that the registry
    # keeps following the tracking URI afterwards as it did before.
    previous = (getattr(tracking_utils, "_tracking_uri", None), getattr(registry_utils, "_registry_uri", None))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # None (typed out by MLflow's stubs) puts back MLflow's own resolution, as before the block.
        mlflow.set_tracking_uri(previous[0])  # type: ignore[arg-type]
        mlflow.set_registry_uri(previous[1])  # type: ignore[arg-type]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. :/]")


def mlflow_key(key: str) -> str:
    """MLflow accepts only alphanumerics and ``_-. :/`` in names; map anything else (``+`` in
    ``career-small-two_stage+pretrain``) to ``_`` so a model's name never fails a run at its last step."""
    return _INVALID_KEY_CHARS.sub("_", key)


class MlflowTracker:
    """One MLflow run. ``parent_run_id`` makes it a nested child run (one per sweep trial or seed)."""

    def __init__(
        self,
        config: TrackingConfig,
        run_name: str,
        run_dir: Path,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow.tracking import MlflowClient

        uri = config.tracking_uri or default_uri(run_dir)
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(config.experiment)
        if exp is None:
            # Keep artifacts beside the database for local stores instead of in the current directory.
            location = (run_dir / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite") else None
            exp_id = self.client.create_experiment(config.experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        self.run = self.client.create_run(exp_id, run_name=run_name, tags=all_tags)
        self.run_id: str | None = self.run.info.run_id
        self.tracking_uri = uri
        logger.info("MLflow run %s (%s) at %s", run_name, self.run_id, uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``params`` (through :func:`laborlm.tracking.params.loggable_params`: no ``tracking.*``, no secrets)."""
        from mlflow.entities import Param

        items = [Param(mlflow_key(k), str(v)[:_MAX_PARAM_LEN]) for k, v in loggable_params(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run.info.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(mlflow_key(k), float(v), ts, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run.info.run_id, metrics=items[i : i + 500])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(self.run.info.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run.info.run_id, str(path), artifact_path)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        self.client.log_dict(self.run.info.run_id, loggable_dict(data), name)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run.info.run_id, status=status)
