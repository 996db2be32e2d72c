"""A Ray worker node lost while Ray Data writes (issue 16, faults): synthetic generation and a corpus build.

A real local cluster on loopback (`laborlm.cluster.local`: a head with 1 CPU and a worker node with 2), jobs
run through the CLI with ``--address``; once the job has written its first output file, the worker node's
whole process tree is SIGKILLed (a lost machine). Ray re-executes the lost tasks on the head; because every
task writes its files under a temporary name and renames them when whole, and the output is a function of the
config alone, the job must finish with output identical to an undisturbed run. (The other allowed outcome,
a clear failure with nothing left that a re-run would reuse, is what the disk-full tests check.)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laborlm.cluster.local import ClusterConfig, ClusterState, _process_table, add_node, down, up
from laborlm.synthetic import generate_panel, load_preset
from laborlm.tracking.server import free_port

pytestmark = [pytest.mark.chaos, pytest.mark.slow_chaos, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
PEOPLE, SHARD = 6000, 150  # 40 shards: long enough on 3 CPUs for the node to die mid-job
SYNTH = dataclasses.replace(load_preset("psid"), people=PEOPLE, shard_size=SHARD, seed=11)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    folder = tmp_path_factory.mktemp("cluster")
    state = up(
        ClusterConfig(
            folder=folder,
            ray_port=free_port(),
            dashboard_port=free_port(),
            client_port=free_port(),
            head_cpus=1,
            workers=1,
            worker_cpus=2,
            mlflow=False,
        )
    )
    try:
        yield state
    finally:
        down(folder)


def _kill_tree(pgid: int) -> None:
    """SIGKILL a node's process group and every descendant (its raylet and workers)."""
    table = _process_table()
    doomed = {pid for pid, (_, group) in table.items() if group == pgid}
    frontier = set(doomed)
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier and pid not in doomed}
        doomed |= frontier
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _run_and_kill(cmd: list[str], watch: Path, pattern: str, pgid: int | None, log: Path) -> float:
    """Run ``laborlm cmd``; SIGKILL the node group ``pgid`` once ``watch`` holds a file matching ``pattern``.
    Returns the seconds into the job at which the node was lost."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "laborlm", *cmd],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    start = time.monotonic()
    killed_at = -1.0
    try:
        if pgid is not None:
            while not list(watch.parent.glob(f"{watch.name}*/{pattern}")) and not list(watch.glob(pattern)):
                assert proc.poll() is None, f"job ended before any output:\n{log.read_text()[-3000:]}"
                assert time.monotonic() - start < 300, log.read_text()[-3000:]
                time.sleep(0.1)
            assert proc.poll() is None, "the job finished before the node could be lost; make it longer"
            _kill_tree(pgid)
            killed_at = time.monotonic() - start
        assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    return killed_at


def _same_panel(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name.endswith(".parquet"):
            assert pq.read_table(a / name).equals(pq.read_table(b / name)), name
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_node_lost_during_synthetic_generation_and_corpus_build(
    cluster: ClusterState, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    generate_panel(SYNTH, reference)  # in-process, undisturbed
    address = cluster.ray_address

    # 1. Synthetic generation on 3 workers; the worker node dies after the first shard is written.
    out = tmp_path / "panel"
    synth = [
        "data",
        "synth",
        "--preset",
        "psid",
        "--people",
        str(PEOPLE),
        "--seed",
        str(SYNTH.seed),
        "--out",
        str(out),
        "--workers",
        "3",
        "--address",
        address,
        f"shard_size={SHARD}",
    ]
    lost = _run_and_kill(
        synth, tmp_path / ".panel.tmp-", "part-*.parquet", cluster.groups["node-1"], tmp_path / "synth.log"
    )
    print(f"synth: node lost {lost:.1f} s into the job")
    _same_panel(reference, out)
    assert not list(tmp_path.glob(".panel.tmp-*"))

    # 2. A corpus build, undisturbed and then with a fresh worker node that dies mid-build.
    build = [
        "corpus",
        "build",
        "--input",
        str(reference),
        "--workers",
        "3",
        "--address",
        address,
        "--rows-per-shard",
        "100",
    ]
    _run_and_kill(
        [*build, "--out", str(tmp_path / "corpus-a")],
        tmp_path / "corpus-a",
        "",
        None,
        tmp_path / "build-a.log",
    )
    pgid = add_node(cluster, cpus=2, name="node-2")
    lost = _run_and_kill(
        [*build, "--out", str(tmp_path / "corpus-b")],
        tmp_path / "corpus-b",
        "corpus-*.parquet",
        pgid,
        tmp_path / "build-b.log",
    )
    print(f"corpus: node lost {lost:.1f} s into the build")
    a, b = tmp_path / "corpus-a", tmp_path / "corpus-b"
    shards = sorted(p.name for p in a.glob("corpus-*.parquet"))
    assert shards and shards == sorted(p.name for p in b.glob("corpus-*.parquet"))
    for name in shards:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "rejects.jsonl").read_bytes() == (b / "rejects.jsonl").read_bytes()
    assert not [p.name for p in b.iterdir() if ".tmp" in p.name]
