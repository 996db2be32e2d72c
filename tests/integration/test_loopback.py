"""Every Ray LaborLM starts listens on loopback only, and a second `cluster up` on taken ports fails (issue 16,
defects 1 and 5).

Each kind of Ray is started for real and the listening sockets of its whole process tree are listed (psutil):
the local Ray a command starts (`_init_ray`, as quickstart/train/sweep/corpus build do), and `cluster up` with
one extra node and MLflow, while a driver connected through `_init_ray(address)` has workers on both nodes. Any
listener outside 127.0.0.0/8 / ::1 fails. Everything started here is stopped here, by process group and by its
private temp folder (never `ray stop`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from laborlm.cluster.local import ClusterConfig, ClusterState, down, started_processes, status, up
from laborlm.cluster.loopback import RAY_CLUSTER_SWITCH, is_loopback
from laborlm.tracking.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: `_init_ray` as a command calls it, then list the sockets of what it started.
LOCAL_DRIVER = """
import json, os, psutil, ray
from laborlm.cli import _init_ray
from laborlm.cluster.loopback import listening_sockets
_init_ray(None, 1)
ray.get(ray.remote(lambda: 1).remote())  # a worker process too
me = psutil.Process()
pids = {me.pid} | {c.pid for c in me.children(recursive=True)}
pids |= {p.pid for p in psutil.process_iter(["cmdline"]) if os.environ["RAY_TMPDIR"] in " ".join(p.info["cmdline"] or [])}
print("SOCKETS " + json.dumps(listening_sockets(pids)))
ray.shutdown()
"""

# A driver on the cluster (as `laborlm train --address` is): tasks spread over both nodes, then the sockets of
# every process of the cluster and of this driver, while its workers are alive.
CLUSTER_DRIVER = """
import json, os, socket, sys, ray
from pathlib import Path
from laborlm.cli import _init_ray
from laborlm.cluster.local import read_state, started_processes
from laborlm.cluster.loopback import listening_sockets
_init_ray(sys.argv[1], None)
@ray.remote(num_cpus=1)
def where():
    import time
    time.sleep(0.5)
    return ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
placed = ray.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(4)])
pids = started_processes(read_state(Path(sys.argv[2]))) | {os.getpid()}
print("RESULT " + json.dumps({"placed": placed, "sockets": listening_sockets(pids)}))
ray.shutdown()
"""


def _env(**extra: str) -> dict[str, str]:
    """This environment without anything that would point Ray elsewhere or already pin it to loopback."""
    drop = {"RAY_ADDRESS", "MLFLOW_TRACKING_URI", RAY_CLUSTER_SWITCH}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def _kill_naming(needle: str) -> None:
    """SIGKILL what is left of a run: processes whose command line names our private temp folder."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        if p.pid != os.getpid() and needle in " ".join(p.info["cmdline"] or []):
            try:
                p.kill()
            except psutil.Error:
                pass


def _run(code: str, *args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"timed out after {timeout:.0f} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _tagged(out: str, tag: str) -> object:
    lines = [line for line in out.splitlines() if line.startswith(tag + " ")]
    assert lines, f"no {tag} line in the output"
    return json.loads(lines[-1][len(tag) + 1 :])


def _exposed(sockets: list[list[object]]) -> list[list[object]]:
    return [s for s in sockets if not is_loopback(str(s[2]))]


def test_the_local_ray_of_a_command_listens_on_loopback_only() -> None:
    temp = tempfile.mkdtemp(prefix="llm-lo-", dir="/tmp")  # short: Ray's socket paths live below it
    try:
        done = _run(LOCAL_DRIVER, env=_env(RAY_TMPDIR=temp), timeout=150)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        _kill_naming(temp)
        shutil.rmtree(temp, ignore_errors=True)
    sockets = _tagged(done.stdout, "SOCKETS")
    assert isinstance(sockets, list)
    names = {str(s[1]) for s in sockets}
    assert {"gcs_server", "raylet"} <= names, (
        names
    )  # the scan saw Ray's servers, so an empty result means something
    assert not _exposed(sockets), f"listening beyond loopback: {_exposed(sockets)}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterConfig, ClusterState]]:
    """`cluster up` with one extra Ray node and MLflow, on free ports; stopped and checked gone afterwards."""
    folder = tmp_path_factory.mktemp("cluster-a")
    cfg = ClusterConfig(
        folder=folder,
        ray_port=free_port(),
        dashboard_port=free_port(),
        mlflow_port=free_port(),
        client_port=free_port(),
        head_cpus=1,
        workers=1,
        worker_cpus=1,
        mlflow=True,
    )
    saved = os.environ.pop(RAY_CLUSTER_SWITCH, None)  # the fix must not depend on the caller's environment
    state = None
    try:
        state = up(cfg)
        yield cfg, state
    finally:
        if saved is not None:
            os.environ[RAY_CLUSTER_SWITCH] = saved
        down(folder)
    assert not started_processes(state), "processes of the cluster survived `down`"


def test_cluster_up_with_a_worker_node_listens_on_loopback_only(
    cluster: tuple[ClusterConfig, ClusterState],
) -> None:
    cfg, state = cluster
    done = _run(CLUSTER_DRIVER, state.ray_address, state.folder, env=_env(), timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    result = _tagged(done.stdout, "RESULT")
    assert isinstance(result, dict)
    assert {ip for ip, _ in result["placed"]} == {"127.0.0.1"}
    assert len({node for _, node in result["placed"]}) == 2  # tasks ran on the head and on the extra node
    sockets = result["sockets"]
    names = [str(s[1]) for s in sockets]
    assert names.count("gcs_server") and len({s[0] for s in sockets if s[1] == "raylet"}) == 2, names
    ports = {int(s[3]) for s in sockets}
    assert {
        cfg.ray_port,
        cfg.dashboard_port,
        cfg.client_port,
        cfg.mlflow_port,
    } <= ports  # Ray Client on loopback too
    assert not _exposed(sockets), f"listening beyond loopback: {_exposed(sockets)}"


def test_the_loopback_cluster_runs_a_submitted_job(cluster: tuple[ClusterConfig, ClusterState]) -> None:
    """Through the head's dashboard agent (on a free port: Ray's fixed 52365 may belong to another Ray here),
    a job whose driver finds the cluster from RAY_ADDRESS, as every `laborlm submit` job does."""
    import time

    from ray.job_submission import JobStatus, JobSubmissionClient

    _, state = cluster
    client = JobSubmissionClient(state.dashboard_url)
    job = client.submit_job(
        entrypoint='python -c "import ray; ray.init(); '
        "print('job ran on', ray.get(ray.remote(ray.util.get_node_ip_address).remote()))\""
    )
    deadline = time.monotonic() + 120
    while (job_status := client.get_job_status(job)) not in {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
    }:
        assert time.monotonic() < deadline, "the job did not finish in 120 s"
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert job_status == JobStatus.SUCCEEDED and "job ran on 127.0.0.1" in logs, logs[-2000:]


def test_a_second_cluster_on_taken_ports_fails_and_reports_nothing_of_the_first(
    cluster: tuple[ClusterConfig, ClusterState], tmp_path: Path
) -> None:
    cfg, state = cluster
    other = tmp_path / "other"
    laborlm = [sys.executable, "-m", "laborlm"]
    second = subprocess.run(
        [
            *laborlm,
            "cluster",
            "up",
            "--folder",
            str(other),
            "--ray-port",
            str(cfg.ray_port),
            "--dashboard-port",
            str(cfg.dashboard_port),
            "--mlflow-port",
            str(cfg.mlflow_port),
            "--client-port",
            str(cfg.client_port),
        ],
        check=False,
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode != 0, second.stdout + second.stderr
    assert "already in use" in second.stderr and str(cfg.ray_port) in second.stderr, second.stderr
    assert "MLflow port" in second.stderr

    shown = subprocess.run(
        [*laborlm, "cluster", "status", "--folder", str(other)],
        check=False,
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    info = json.loads(shown.stdout)
    assert shown.returncode == 1 and info["running"] is False
    assert not info.get("mlflow_healthy") and not info.get("ray_nodes_alive")

    first = status(Path(state.folder))  # and the first cluster is untouched
    assert first["running"] and first["ray_nodes_alive"] == 2 and first["mlflow_healthy"] is True
