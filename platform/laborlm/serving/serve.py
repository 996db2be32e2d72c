"""A registered model served by ``mlflow models serve`` on loopback, started and stopped by us.

    with served_model("models:/psid-career@champion", tracking_uri, Path("runs/serve")) as url:
        ...   # POST {url}/invocations {"inputs": [career, ...]}

Why our own helper around the MLflow CLI: the server runs in its own session (``setsid``) so that stopping it
by *our child's* process group also stops uvicorn's worker, never anything found by name; it binds 127.0.0.1
unless told otherwise; and readiness is ``/health`` answered while our process is alive, within a bound.
``--env-manager local`` serves from this environment (laborlm is not on PyPI for MLflow to install).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from laborlm.errors import LaborLMError
from laborlm.tracking.server import free_port

logger = logging.getLogger(__name__)


@contextmanager
def served_model(
    model_uri: str,
    tracking_uri: str,
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    timeout_s: float = 180.0,
) -> Iterator[str]:
    """Serve ``model_uri`` (``models:/NAME@alias``) for the length of a ``with`` block; yields its base URL.

    The server's log is ``folder/serve.log``; its working directory is ``folder`` (MLflow may write there).

    Raises:
        LaborLMError: the server exited, or did not answer ``/health`` within ``timeout_s`` (its log is named).
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        # mlflow execs `uvicorn` by name: the interpreter's bin folder must be on PATH even in an
        # environment that was never activated.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log_file = folder / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        host,
        "-p",
        str(port),
        "-w",
        str(workers),
    ]
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder
        )
    url = f"http://{host}:{port}"
    try:
        _wait_healthy(proc, url, log_file, timeout_s)
        logger.info("serving %s at %s (log %s)", model_uri, url, log_file)
        yield url
    finally:
        _stop(proc)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_file: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise LaborLMError(f"mlflow models serve exited with code {proc.returncode}; see {log_file}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise LaborLMError(
                f"mlflow models serve at {url} did not answer /health within {timeout_s:.0f} s; "
                f"see {log_file}"
            )
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM our child's process group, SIGKILL what is left after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
