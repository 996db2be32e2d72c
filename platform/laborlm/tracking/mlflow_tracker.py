"""MLflow implementation of ``Tracker``, and the one place LaborLM talks to MLflow's tracking API.

Why a SQLite default rather than MLflow's ``./mlruns`` file store: the model registry needs a database
backend, and the same file can later be served by ``mlflow server`` for the UI.

Two ways to get a run, one implementation behind both (:class:`AttachedRun`):

* :class:`MlflowTracker` creates a fresh run (evaluate, fit, benchmarks, analyze).
* :func:`open_run` reopens the unfinished run of a deterministic name, or creates it (training phases and
  sweeps). A phase's run must outlive its Ray Train workers: the driver opens it once, and rank 0 of every
  worker-group attempt (first start, restarts after a failure) attaches to the same run id with
  ``AttachedRun(uri, run_id)``, so a resumed job keeps one metric history.

Tracking never stops a job. A tracking server that goes away mid-run (restarted, network cut) costs a warning,
not the run: what cannot be sent (metrics, params, dicts, artifacts, the final status) is kept in order and
sent when the server answers again, or named in one warning when the run ends. Only the first contact (opening
a run) fails, because a job that cannot record anything from the start is better stopped before it trains.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from laborlm.errors import LaborLMError
from laborlm.tracking.params import loggable_dict, loggable_params

logger = logging.getLogger(__name__)

_MAX_PARAM_LEN = 6000  # MLflow's limit on a param value
_PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch
_METRICS_PER_BATCH = 500  # MLflow allows 1000
# While a tracker call is in flight against an HTTP server: MLflow's own defaults retry 7 times with
# exponential back-off (about four minutes against a refused connection), a stall that would hold a training
# step. A tracker keeps what it could not send instead, so it retries little and briefly.
_BOUNDED_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


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

    What is put back is what was *set*, not what MLflow resolved, so that a registry that followed the tracking
    URI keeps following it, and an environment variable keeps deciding when it decided before. Only MLflow's
    public API is used: a URI came from ``set_tracking_uri`` when MLflow reports one set while the environment
    holds none; the registry URI was set when it differs from the tracking URI and no environment names it.
    """
    if not uri:
        yield
        return
    import mlflow

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    tracking_set = (
        mlflow.get_tracking_uri()
        if saved_env["MLFLOW_TRACKING_URI"] is None and mlflow.is_tracking_uri_set()  # type: ignore[no-untyped-call]
        else None
    )
    registry = mlflow.get_registry_uri()
    registry_set = (
        registry
        if saved_env["MLFLOW_REGISTRY_URI"] is None and registry != mlflow.get_tracking_uri()
        else None
    )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # None (typed out by MLflow's stubs) puts back MLflow's own resolution, as before the block.
        mlflow.set_tracking_uri(tracking_set)  # type: ignore[arg-type]
        mlflow.set_registry_uri(registry_set)  # type: ignore[arg-type]
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


def is_unreachable(exc: BaseException, uri: str) -> bool:
    """Whether ``exc``, raised by a call to the store at ``uri``, says the store could not be reached or was
    briefly unable to answer (worth keeping the record and retrying), rather than that it refused the record
    (a bad key or value: a bug, raised).

    An HTTP server's refusal is a ``RestException`` with a 4xx status; a 5xx (a server shutting down, a locked
    SQLite behind it) is transient. MLflow's REST client reports a connection refused or reset, a timeout or
    exhausted retries as a plain ``MlflowException`` (or a ``requests``/OS error). A local database store
    raises a plain ``MlflowException`` for a refused record too, so there only a locked database is transient.
    """
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(exc, RestException):
        return int(exc.get_http_status_code()) >= 500  # type: ignore[no-untyped-call]
    if isinstance(exc, MlflowException):
        return uri.startswith(("http://", "https://")) or "database is locked" in str(exc)
    try:
        import requests

        if isinstance(exc, requests.RequestException):
            return True
    except ImportError:  # pragma: no cover - requests is an MLflow dependency
        pass
    return isinstance(exc, (OSError, TimeoutError))


class AttachedRun:
    """A ``Tracker`` writing to an existing MLflow run; see the module docstring for how runs are obtained.

    Records that cannot be sent because the store is unreachable are queued in order; each later call first
    probes the server (a TCP connect, for HTTP URIs, at most every ``retry_interval_s`` seconds while it is
    down) and sends the queue once it answers. :meth:`finish` makes a last attempt and warns with what was lost.
    """

    def __init__(self, tracking_uri: str, run_id: str | None, *, retry_interval_s: float = 10.0) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.run_id: str | None = run_id
        self.retry_interval_s = retry_interval_s
        self._pending: list[tuple[str, Callable[[], None]]] = []  # (what, send) in call order
        self._down_since: float | None = None  # monotonic time of the first failure of the current outage
        self._last_try = 0.0
        # A tracker that is dropped without finish() (rank 0 of a training phase: the driver finishes the run)
        # still says what it could not send, when it is collected or the process exits.
        self._unsent = weakref.finalize(self, _warn_unsent, self._pending, tracking_uri, run_id)

    # -- Tracker ----------------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``params`` (through :func:`laborlm.tracking.params.loggable_params`: no ``tracking.*``, no secrets).

        Params are immutable in MLflow: keys the run already holds (a restarted worker group logging its config
        again) are skipped, with a warning when the value differs.
        """
        from mlflow.entities import Param

        items = [Param(mlflow_key(k), str(v)[:_MAX_PARAM_LEN]) for k, v in loggable_params(params).items()]
        run_id, client = str(self.run_id), self.client  # closures hold the client, never self (see _unsent)

        def send() -> None:
            existing = client.get_run(run_id).data.params
            fresh = []
            for p in items:
                if p.key not in existing:
                    fresh.append(p)
                elif existing[p.key] != p.value:
                    logger.warning(
                        "MLflow run %s: param %s already %r; %r not logged (params are immutable)",
                        run_id,
                        p.key,
                        existing[p.key],
                        p.value,
                    )
            for i in range(0, len(fresh), _PARAMS_PER_BATCH):
                client.log_batch(run_id, params=fresh[i : i + _PARAMS_PER_BATCH])

        self._submit(f"{len(items)} params", send)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)  # when measured, not when sent: a flushed backlog keeps its times
        items = [Metric(mlflow_key(k), float(v), ts, step or 0) for k, v in metrics.items()]
        run_id, client = str(self.run_id), self.client

        def send() -> None:
            for i in range(0, len(items), _METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=items[i : i + _METRICS_PER_BATCH])

        self._submit(f"metrics at step {step or 0}", send)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path, run_id, client = Path(path), str(self.run_id), self.client

        def send() -> None:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path)
            else:
                client.log_artifact(run_id, str(path), artifact_path)

        self._submit(f"artifact {path}", send)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        safe, run_id, client = loggable_dict(data), str(self.run_id), self.client
        self._submit(f"{name}", lambda: client.log_dict(run_id, safe, name))

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is None:
            return
        run_id, client = str(self.run_id), self.client
        self._submit(f"status {status}", lambda: client.set_terminated(run_id, status=status), force=True)
        self._unsent()  # warns once, now, if anything is left

    # -- delivery ---------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """How many records wait for the tracking store to come back."""
        return len(self._pending)

    def _submit(self, what: str, send: Callable[[], None], *, force: bool = False) -> None:
        """Queue ``send`` and deliver the queue in order if the store can be reached."""
        if self.run_id is None:  # opened while the store was down (see open_run): records nothing
            return
        self._pending.append((what, send))
        if (
            self._down_since is not None
            and not force
            and time.monotonic() - self._last_try < self.retry_interval_s
        ):
            return
        self._flush()

    def _flush(self) -> None:
        self._last_try = time.monotonic()
        if not self._probe():
            self._went_down("no answer on its port")
            return
        while self._pending:
            send = self._pending[0][1]
            try:
                with _bounded_http_retries(self.tracking_uri):
                    send()
            except Exception as exc:
                if not is_unreachable(exc, self.tracking_uri):
                    self._pending.pop(0)
                    raise
                self._went_down(f"{type(exc).__name__}: {exc}")
                return
            self._pending.pop(0)
        if self._down_since is not None:
            logger.warning(
                "MLflow at %s answers again after %.0f s; the records kept meanwhile were logged",
                self.tracking_uri,
                time.monotonic() - self._down_since,
            )
            self._down_since = None

    def _went_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "MLflow at %s unreachable (%s); the job goes on and keeps what it would log "
                "(retrying every %.0f s)",
                self.tracking_uri,
                reason[:300],
                self.retry_interval_s,
            )

    def _probe(self) -> bool:
        return answers(self.tracking_uri)


def answers(uri: str) -> bool:
    """For an HTTP store, whether something accepts a TCP connection on its port (a refused port answers at
    once, where MLflow's client would retry for minutes); other stores are always tried."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=2.0):
            return True
    except OSError:
        return False


def _unreachable_error(uri: str) -> LaborLMError:
    return LaborLMError(
        f"MLflow tracking server at {uri} does not answer; start it (laborlm cluster up, or "
        "mlflow server), point tracking.tracking_uri elsewhere, or set tracking.enabled=false"
    )


def _warn_unsent(pending: list[tuple[str, Callable[[], None]]], uri: str, run_id: str | None) -> None:
    if pending:
        logger.warning(
            "MLflow at %s still unreachable as run %s ends here: %d records not logged (%s); the job's own "
            "outputs (checkpoints, model folder) are complete, the run stays RUNNING in MLflow",
            uri,
            run_id,
            len(pending),
            ", ".join(what for what, _ in pending[:5]) + (", ..." if len(pending) > 5 else ""),
        )


@contextmanager
def _bounded_http_retries(uri: str) -> Iterator[None]:
    """MLflow's HTTP retry settings bounded for one call (unless the user set their own), then put back."""
    if not uri.startswith(("http://", "https://")):
        yield
        return
    added = {k: v for k, v in _BOUNDED_RETRIES.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _experiment_id(client: Any, config: TrackingConfig, run_dir: Path, uri: str) -> str:
    exp = client.get_experiment_by_name(config.experiment)
    if exp is not None:
        return str(exp.experiment_id)
    # Keep artifacts beside the database for local stores instead of in the current directory.
    location = (run_dir / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite") else None
    return str(client.create_experiment(config.experiment, artifact_location=location))


def _create_run(
    client: Any, exp_id: str, run_name: str, parent_run_id: str | None, tags: Mapping[str, str] | None
) -> str:
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    return str(client.create_run(exp_id, run_name=run_name, tags=all_tags).info.run_id)


class MlflowTracker(AttachedRun):
    """A fresh MLflow run. ``parent_run_id`` makes it a nested child run (one per sweep trial or seed)."""

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
        if not answers(uri):
            raise _unreachable_error(uri)
        client = MlflowClient(tracking_uri=uri)
        with _bounded_http_retries(uri):
            run_id = _create_run(
                client, _experiment_id(client, config, run_dir, uri), run_name, parent_run_id, tags
            )
        super().__init__(uri, run_id)
        logger.info("MLflow run %s (%s) at %s", run_name, run_id, uri)


def open_run(
    config: TrackingConfig,
    run_dir: Path,
    run_name: str,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> AttachedRun:
    """The unfinished run called ``run_name`` in the experiment (reopened), or a new one.

    A run that FINISHED is never reused: re-running a completed job records a new run.

    A store that does not answer is an error for a top-level run (the job has not started: better stopped
    than run unrecorded). A nested run (``parent_run_id``: a later training phase, a sweep trial) is opened
    while its job already runs; if the store went away meanwhile, the run is left untracked (``run_id`` None,
    every record dropped) with a warning, and the job goes on.

    Raises:
        LaborLMError: a top-level run and a store that does not answer.
    """
    from mlflow.tracking import MlflowClient

    uri = config.tracking_uri or default_uri(run_dir)
    client = MlflowClient(tracking_uri=uri)
    try:
        if not answers(uri):
            raise ConnectionRefusedError(f"nothing answers at {uri}")
        with _bounded_http_retries(uri):
            return _open_or_reopen(client, config, run_dir, uri, run_name, parent_run_id, tags)
    except Exception as exc:
        if not is_unreachable(exc, uri):
            raise
        if parent_run_id is None:
            raise _unreachable_error(uri) from exc
        logger.warning(
            "MLflow at %s unreachable as run %s starts (%s): this run is not tracked; the job goes on",
            uri,
            run_name,
            str(exc)[:200],
        )
        return AttachedRun(uri, None)


def _open_or_reopen(
    client: Any,
    config: TrackingConfig,
    run_dir: Path,
    uri: str,
    run_name: str,
    parent_run_id: str | None,
    tags: Mapping[str, str] | None,
) -> AttachedRun:
    exp_id = _experiment_id(client, config, run_dir, uri)
    name = run_name.replace("'", "")
    found = client.search_runs(
        [exp_id],
        filter_string=f"attributes.run_name = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    for run in found:
        if run.info.status in ("RUNNING", "FAILED", "KILLED"):
            client.update_run(run.info.run_id, status="RUNNING")
            logger.info("MLflow run %s (%s) reopened at %s", run_name, run.info.run_id, uri)
            return AttachedRun(uri, run.info.run_id)
    run_id = _create_run(client, exp_id, run_name, parent_run_id, tags)
    logger.info("MLflow run %s (%s) at %s", run_name, run_id, uri)
    return AttachedRun(uri, run_id)
