"""A real Ray cluster and MLflow server on this machine: ``laborlm cluster up | status | down``.

    laborlm cluster up --workers 1        # ray start --head (+ one more Ray node) and an MLflow server
    laborlm submit jobs/quickstart.yaml --address http://127.0.0.1:8265
    laborlm cluster status
    laborlm cluster down                  # stops exactly what `up` started, nothing else

``up`` runs ``ray start --head --block`` and each extra node's ``ray start --address ... --block`` in their own
sessions, and ``mlflow server`` (SQLite backend, local artifact store) the same way; their process groups and
a cluster-private Ray temp folder are recorded in ``<folder>/cluster.json``. ``down`` signals those process
groups, then kills any process still naming the cluster's temp folder (Ray's workers start their own process
groups), so it never touches another Ray on the machine, unlike ``ray stop``.

Everything binds 127.0.0.1 unless ``--host`` says otherwise, which logs a warning: Ray's dashboard and job API
run arbitrary code for whoever reaches them, and the MLflow server has no authentication. "Everything" includes
what Ray starts behind the head and each node (GCS, raylets, dashboard and runtime-env agents, workers, the Ray
Client server): see ``laborlm.cluster.loopback`` for why that takes more than ``--node-ip-address 127.0.0.1``.

``up`` refuses to start when one of its ports is taken (naming the holder), and counts a server as ready only
when the process listening on its port is one it started: a second cluster on the same ports must fail, not
report the first cluster's health as its own. ``status`` reports health only for the processes of its folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from laborlm.cluster.loopback import RAY_CLUSTER_SWITCH, check_ports_free, is_loopback, listening_sockets
from laborlm.errors import ConfigError, LaborLMError

logger = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ClusterConfig:
    folder: Path = Path("runs/cluster")  # state, logs, the MLflow database and artifacts
    host: str = "127.0.0.1"  # every server binds here; anything but loopback is exposed (a warning says so)
    ray_port: int = 6379  # GCS
    dashboard_port: int = 8265  # dashboard and Job Submission API
    mlflow_port: int = 5000
    client_port: int = 10001  # Ray Client server (bound to host like the rest)
    head_cpus: int | None = None  # logical CPUs of the head; None: the machine's
    workers: int = 0  # extra Ray nodes on this machine (a second `ray start --address`), for multi-node tests
    worker_cpus: int = 1
    mlflow: bool = True  # also start the MLflow tracking server

    def __post_init__(self) -> None:
        problems = []
        for name in ("ray_port", "dashboard_port", "mlflow_port", "client_port"):
            if not 0 < getattr(self, name) < 65536:
                problems.append(f"{name}: not a port: {getattr(self, name)}")
        if self.workers < 0 or self.worker_cpus < 1 or (self.head_cpus is not None and self.head_cpus < 1):
            problems.append("workers must be >= 0, worker_cpus and head_cpus >= 1")
        if problems:
            raise ConfigError(problems)


@dataclass
class ClusterState:
    """What ``up`` started: enough for ``status`` and ``down`` from another process."""

    folder: str
    host: str
    temp_dir: str  # Ray's session files; every Ray process of this cluster names it on its command line
    ray_address: str  # host:port for ray.init / ray start --address
    dashboard_url: str  # http://host:port: the Job Submission API
    mlflow_uri: str | None
    groups: dict[str, int] = field(default_factory=dict)  # name (head, node-1, mlflow) -> process group id

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients: RAY_ADDRESS and MLFLOW_TRACKING_URI."""
        env = {"RAY_ADDRESS": self.dashboard_url}
        if self.mlflow_uri:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_uri
        return env


def _temp_dir(folder: Path) -> Path:
    """A short cluster-private Ray temp folder (Unix socket paths under it must stay below 108 bytes)."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"laborlm-ray-{digest}"


def _ray_bin() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if found is None:
        raise LaborLMError("the `ray` command is not installed beside this Python")
    return found


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    """Start ``cmd`` in its own session (its pid is its process group id), output appended to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return process.pid


def _cluster_env(host: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every process of the cluster (and, through Ray, of its workers and job drivers)."""
    env = dict(os.environ if base is None else base)
    env.pop("RAY_ADDRESS", None)
    # Jobs run `laborlm ...` through a shell: the nodes find the commands of this Python's environment first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # A cluster on loopback is private to this machine's users; token auth would need every client configured.
    env.setdefault("RAY_AUTH_MODE", "disabled" if host in LOOPBACK else env.get("RAY_AUTH_MODE", "token"))
    if is_loopback(host):
        env[RAY_CLUSTER_SWITCH] = "0"  # keep Ray's node address (and so every server) on loopback
    return env


def _free_port(host: str) -> int:
    """A free port for a node's dashboard agent. Ray's fixed default (52365) is taken by any other Ray on this
    machine, and without its agent a head accepts no job ("No available agent to submit job")."""
    from laborlm.tracking.server import free_port

    return free_port(host)


def _wait_http(
    url: str,
    timeout: float,
    what: str,
    log: Path,
    pid: int,
    owner: ClusterState | None = None,
    ports: tuple[int, ...] = (),
) -> None:
    """Wait until ``url`` answers 200 and, with ``owner``, every one of ``ports`` is held by its processes.

    The second condition is what makes readiness mean *ours*: a server of another cluster on the same port
    answers the URL too, while the process we started is dying of ``address already in use``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise LaborLMError(f"{what} exited while starting; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200 and (owner is None or set(ports) <= _own_ports(owner)):
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise LaborLMError(f"{what} did not answer {url} within {timeout:.0f} s; see {log}")


def _own_ports(state: ClusterState) -> set[int]:
    """TCP ports the processes of this cluster listen on."""
    return {port for _, _, _, port in listening_sockets(started_processes(state))}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def read_state(folder: Path) -> ClusterState | None:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    return ClusterState(**json.loads(path.read_text()))


def up(cfg: ClusterConfig) -> ClusterState:
    """Start the head (+ ``workers`` nodes) and the MLflow server; wait until each answers.

    Raises:
        LaborLMError: a cluster from this folder is still running, or a process failed to start (its log is named).
    """
    folder = Path(cfg.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    old = read_state(folder)
    if old is not None and any(_alive(pid) for pid in old.groups.values()):
        raise LaborLMError(
            f"a cluster from {folder} is running ({old.dashboard_url}); `laborlm cluster down` first"
        )
    if not is_loopback(cfg.host):
        logger.warning(
            "binding Ray and MLflow to %s: anyone who reaches these ports can run code on this cluster "
            "and read every run; prefer 127.0.0.1 with an SSH tunnel",
            cfg.host,
        )
    ports = {"Ray GCS": cfg.ray_port, "dashboard": cfg.dashboard_port, "Ray Client": cfg.client_port}
    if cfg.mlflow:
        ports["MLflow"] = cfg.mlflow_port
    check_ports_free(cfg.host, ports)  # before anything starts: a clash is reported, not half-started
    temp = _temp_dir(folder)
    env = _cluster_env(cfg.host)
    state = ClusterState(
        str(folder),
        cfg.host,
        str(temp),
        f"{cfg.host}:{cfg.ray_port}",
        f"http://{cfg.host}:{cfg.dashboard_port}",
        None,
    )
    ray = _ray_bin()
    try:
        head = [
            ray,
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            cfg.host,
            "--port",
            str(cfg.ray_port),
            "--dashboard-host",
            cfg.host,
            "--dashboard-port",
            str(cfg.dashboard_port),
            "--include-dashboard",
            "true",
            "--ray-client-server-port",
            str(cfg.client_port),
            "--temp-dir",
            str(temp),
            "--dashboard-agent-listen-port",
            str(_free_port(cfg.host)),
            "--disable-usage-stats",
        ]
        if cfg.head_cpus is not None:
            head += ["--num-cpus", str(cfg.head_cpus)]
        state.groups["head"] = _spawn(head, folder / "ray-head.log", env)
        _save(state)
        _wait_http(
            f"{state.dashboard_url}/api/version",
            180,
            "the Ray head",
            folder / "ray-head.log",
            state.groups["head"],
            owner=state,
            ports=(cfg.ray_port, cfg.dashboard_port, cfg.client_port),
        )
        for i in range(1, cfg.workers + 1):
            add_node(state, cpus=cfg.worker_cpus, name=f"node-{i}", env=env)
        if cfg.mlflow:
            _start_mlflow(cfg, state, folder)
    except BaseException:
        down(folder)
        raise
    _save(state)
    logger.info(
        "cluster up: Ray %s (dashboard and jobs %s)%s",
        state.ray_address,
        state.dashboard_url,
        f", MLflow {state.mlflow_uri}" if state.mlflow_uri else "",
    )
    return state


def add_node(
    state: ClusterState, *, cpus: int, name: str, env: dict[str, str] | None = None, timeout: float = 120.0
) -> int:
    """One more Ray node on this machine joined to the head (what an autoscaler does on a real cluster)."""
    env = _cluster_env(state.host, env)
    folder = Path(state.folder)
    # On loopback, Ray's own `ray start` would refuse to join (or leave loopback): see laborlm.cluster.loopback.
    ray = [sys.executable, "-m", "laborlm.cluster.loopback"] if is_loopback(state.host) else [_ray_bin()]
    cmd = [
        *ray,
        "start",
        "--address",
        state.ray_address,
        "--block",
        "--node-ip-address",
        state.host,
        "--num-cpus",
        str(cpus),
        "--dashboard-agent-listen-port",
        str(_free_port(state.host)),
        "--disable-usage-stats",
    ]
    before = _node_count(state)
    pgid = _spawn(cmd, folder / f"ray-{name}.log", env)
    state.groups[name] = pgid
    _save(state)
    deadline = time.monotonic() + timeout
    while _node_count(state) <= before:
        if not _alive(pgid) or time.monotonic() > deadline:
            raise LaborLMError(
                f"Ray node {name} did not join {state.ray_address}; see {folder / f'ray-{name}.log'}"
            )
        time.sleep(0.5)
    return pgid


def _node_count(state: ClusterState) -> int:
    """Alive Ray nodes, from the GCS through the dashboard's state API (no Ray client in this process)."""
    try:
        with urllib.request.urlopen(f"{state.dashboard_url}/api/v0/nodes?limit=1000", timeout=10) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return 0
    nodes = data.get("data", {}).get("result", {}).get("result", [])
    return sum(1 for n in nodes if n.get("state") == "ALIVE")


def _start_mlflow(cfg: ClusterConfig, state: ClusterState, folder: Path) -> None:
    """The tracking server of ``laborlm.tracking.server`` (SQLite + local artifacts), recorded for ``down``."""
    from laborlm.tracking.server import start_mlflow_server

    server = start_mlflow_server(folder / "mlflow", host=cfg.host, port=cfg.mlflow_port, timeout=120)
    state.groups["mlflow"] = server.process.pid  # its own session: pid == process group
    state.mlflow_uri = server.uri
    _save(state)


def _save(state: ClusterState) -> None:
    (Path(state.folder) / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def started_processes(state: ClusterState) -> set[int]:
    """Every live process of the cluster: its process groups and all their descendants (Ray's workers
    start their own groups and rename themselves ``ray::...``), plus anything naming its temp folder."""
    table = _process_table()
    found = {pid for pid, (_, pgid) in table.items() if pgid in state.groups.values()}
    frontier = set(found)
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier and pid not in found}
        found |= frontier
    needle = state.temp_dir.encode()
    for pid in table:
        try:
            if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    found.discard(os.getpid())
    return {pid for pid in found if _alive(pid)}


def stop_group(pgid: int, timeout: float = 20.0) -> None:
    """SIGTERM a process group, SIGKILL it after ``timeout`` seconds if anything is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if not _alive(pgid):
            try:  # the leader is gone (or a zombie); members may remain
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def down(folder: Path, timeout: float = 30.0) -> list[str]:
    """Stop what ``up`` started (nodes, head, MLflow) and every process descended from them."""
    folder = Path(folder).resolve()
    state = read_state(folder)
    if state is None:
        return []
    ours = started_processes(state)  # before the parents go: orphans lose their ancestry
    stopped = []
    for name in sorted(state.groups, key=lambda n: (n == "head", n)):  # worker nodes first, the head last
        pgid = state.groups[name]
        if _alive(pgid):
            stopped.append(name)
        stop_group(pgid)
    deadline = time.monotonic() + timeout
    while (left := {p for p in ours if _alive(p)} | started_processes(state)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        logger.info("killing leftover Ray process %d", pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (folder / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(state.temp_dir, ignore_errors=True)
    logger.info("cluster down: stopped %s", ", ".join(stopped) or "nothing (already stopped)")
    return stopped


def status(folder: Path) -> dict[str, Any]:
    """Each started process's liveness, the Ray nodes and the MLflow server's health."""
    state = read_state(Path(folder).resolve())
    if state is None:
        return {"running": False, "folder": str(Path(folder).resolve())}
    out: dict[str, Any] = {
        "running": True,
        "folder": state.folder,
        "ray_address": state.ray_address,
        "dashboard_url": state.dashboard_url,
        "mlflow_uri": state.mlflow_uri,
        "processes": {n: _alive(p) for n, p in state.groups.items()},
    }
    # Ask a URL only while a process of this folder holds its port: otherwise whatever else listens there
    # (another cluster) would answer, and its health would be reported as ours.
    own = _own_ports(state) if any(out["processes"].values()) else set()
    out["ray_nodes_alive"] = _node_count(state) if _port_of(state.dashboard_url) in own else 0
    if state.mlflow_uri:
        out["mlflow_healthy"] = False
        if _port_of(state.mlflow_uri) in own:
            try:
                with urllib.request.urlopen(f"{state.mlflow_uri}/health", timeout=3) as response:
                    out["mlflow_healthy"] = response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
    out["running"] = any(out["processes"].values())
    return out


def _port_of(url: str) -> int | None:
    return urllib.parse.urlsplit(url).port
