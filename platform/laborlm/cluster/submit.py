"""Submit job YAMLs to a Ray cluster through the Job Submission API: ``laborlm submit`` and ``laborlm jobs``.

    laborlm submit jobs/train_tiny.yaml --address http://127.0.0.1:8265 pretrain.max_steps=50
    laborlm jobs status|logs|stop JOB_ID --address http://127.0.0.1:8265

The job's entrypoint is ``laborlm run <yaml> <overrides>``, exactly what ``ray job submit ... --`` runs, after
the config has been loaded here (a typo fails on your laptop, not after the cluster queued it). The runtime
environment carries the working directory (minus runs, caches and virtual environments), optionally the
pinned requirements (``--pip constraints.txt``), and only the environment variables named with ``--env``; their
values are never logged or written anywhere.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from laborlm.errors import ConfigError, LaborLMError

logger = logging.getLogger(__name__)

EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "runs",
    "**/__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
]
FORWARDED_BY_DEFAULT = ("MLFLOW_TRACKING_URI",)  # not a secret: where runs go
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class Submission:
    job_id: str
    entrypoint: str
    status: str | None  # terminal status when waited for, else None


def check_job(config: Path, overrides: Sequence[str]) -> str:
    """Load the job YAML strictly as its kind's config (the errors ``laborlm run`` would give); return the kind.

    The kind is resolved by the same registry ``laborlm run`` dispatches on (``laborlm.jobs``), so whatever the
    cluster will run is checked here, before it is queued.
    """
    from laborlm.jobs import load_job

    if not Path(config).is_file():
        raise ConfigError(f"{config}: no such job file")
    job, _ = load_job(config, overrides)
    return job.kind


def runtime_env(
    working_dir: Path, *, pip: Path | None = None, env_names: Sequence[str] = ()
) -> dict[str, Any]:
    """The job's runtime environment; env var values are read here and sent to the cluster, never logged."""
    env: dict[str, Any] = {"working_dir": str(working_dir), "excludes": list(EXCLUDES)}
    names = list(dict.fromkeys([*FORWARDED_BY_DEFAULT, *env_names]))
    missing = [n for n in env_names if n not in os.environ]
    if missing:
        raise ConfigError(f"--env: not set in this environment: {', '.join(missing)}")
    values = {n: os.environ[n] for n in names if n in os.environ}
    if values:
        env["env_vars"] = values
    if pip is not None:
        if not pip.is_file():
            raise ConfigError(f"--pip: {pip}: no such requirements file")
        pins = [ln.strip() for ln in pip.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        env["pip"] = {"packages": pins, "pip_check": False}
    return env


def submit(
    config: Path,
    overrides: Sequence[str],
    *,
    address: str,
    working_dir: Path | None = None,
    pip: Path | None = None,
    env_names: Sequence[str] = (),
    wait: bool = True,
    follow: TextIO | None = None,
    timeout: float | None = None,
) -> Submission:
    """Submit ``laborlm run CONFIG OVERRIDES`` as a Ray job; optionally wait for it and stream its logs.

    Raises:
        ConfigError: the job YAML or its overrides are invalid. LaborLMError: the cluster is unreachable, or the
            wait timed out (the job is stopped first).
    """
    from ray.job_submission import JobSubmissionClient

    working_dir = Path(working_dir or Path.cwd()).resolve()
    config = Path(config)
    kind = check_job(config, overrides)
    relative = (
        config.resolve().relative_to(working_dir) if config.resolve().is_relative_to(working_dir) else None
    )
    if relative is None:
        raise ConfigError(
            f"{config}: the job file must lie inside the working directory {working_dir} "
            "(it is uploaded with it)"
        )
    entrypoint = shlex.join(["laborlm", "run", str(relative), *overrides])
    env = runtime_env(working_dir, pip=pip, env_names=env_names)
    try:
        client = JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LaborLMError(f"cannot reach the Ray job API at {address}: {exc}") from None
    job_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env=env,
        metadata={"laborlm.kind": kind, "laborlm.config": str(relative)},
    )
    logger.info(
        "submitted %s as %s (%s; env vars forwarded: %s)",
        entrypoint,
        job_id,
        address,
        ", ".join(sorted(env.get("env_vars", {}))) or "none",
    )
    if not wait:
        return Submission(job_id, entrypoint, None)
    return Submission(job_id, entrypoint, wait_for(client, job_id, follow=follow, timeout=timeout))


def wait_for(
    client: Any, job_id: str, *, follow: TextIO | None = None, timeout: float | None = None, poll: float = 1.0
) -> str:
    """Poll the job until it ends, writing new log output to ``follow``; returns the terminal status."""
    shown = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = str(client.get_job_status(job_id).value)  # JobStatus is a str enum
        if follow is not None:
            logs = client.get_job_logs(job_id)
            follow.write(logs[shown:])
            follow.flush()
            shown = len(logs)
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            client.stop_job(job_id)
            raise LaborLMError(f"job {job_id} did not finish within {timeout:.0f} s; stopped it")
        time.sleep(poll)
