"""A local MLflow tracking server on loopback: SQLite backend, local artifact store, started and stopped by us.

    with mlflow_server(Path("runs/quickstart")) as server:
        run_something(tracking_uri=server.uri)      # http://127.0.0.1:<port>

Why a server rather than a bare ``sqlite:///`` URI: it is what users browse (the UI), what the model registry
and ``mlflow models serve`` talk to on a cluster, and what proxies artifacts for remote Ray workers. It binds
127.0.0.1 only. The process runs in its own session so that stopping it stops uvicorn and every helper it
spawned, and MLflow's job-execution consumers are switched off (they add seven processes and slow shutdown).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from laborlm.errors import LaborLMError

logger = logging.getLogger(__name__)

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


@dataclass
class MlflowServer:
    """A running ``mlflow server`` process and where it stores things."""

    host: str
    port: int
    backend_uri: str  # sqlite:///<folder>/mlflow.db
    artifacts: Path
    process: subprocess.Popen[bytes]
    log_file: Path

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left after ``timeout`` seconds."""
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("MLflow server %s did not stop in %.0f s; killing it", self.uri, timeout)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        logger.info("MLflow server %s stopped", self.uri)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_mlflow_server(
    folder: Path, *, host: str = "127.0.0.1", port: int | None = None, timeout: float = 90.0
) -> MlflowServer:
    """Start ``mlflow server`` with ``folder/mlflow.db`` and ``folder/mlartifacts``; wait until /health answers.

    Ready means answered by *this* server: its process tree holds the port. Another server already on the
    port would answer /health while ours dies of ``address already in use``, so a taken port is refused first.

    Raises:
        LaborLMError: the port is taken, or the server exited or did not answer within ``timeout`` seconds
            (its log is named).
    """
    from laborlm.cluster.loopback import check_ports_free

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if port:
        check_ports_free(host, {"MLflow": port})
    port = port or free_port(host)
    backend = f"sqlite:///{folder / DB_FILE}"
    artifacts = folder / ARTIFACTS_DIR
    artifacts.mkdir(exist_ok=True)
    log_file = folder / "mlflow-server.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",
    ]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with log_file.open("ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = MlflowServer(host, port, backend, artifacts, process, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise LaborLMError(f"MLflow server exited with code {process.returncode}; see {log_file}")
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as response:
                if response.status == 200 and _holds_port(process.pid, port):
                    logger.info("MLflow server on %s (backend %s)", server.uri, backend)
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    server.stop()
    raise LaborLMError(
        f"MLflow server on {server.uri} did not answer /health within {timeout:.0f} s; see {log_file}"
    )


def _holds_port(pid: int, port: int) -> bool:
    """Whether ``pid`` or one of its descendants listens on ``port``."""
    import psutil

    from laborlm.cluster.loopback import listening_sockets

    try:
        tree = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return False
    return any(p == port for _, _, _, p in listening_sockets(tree))


@contextmanager
def mlflow_server(
    folder: Path, *, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[MlflowServer]:
    """``start_mlflow_server`` for the length of a ``with`` block; stopped even when the block fails."""
    server = start_mlflow_server(folder, host=host, port=port)
    try:
        yield server
    finally:
        server.stop()
