"""Loopback helpers, and `cluster up`/`status` trusting only their own processes (issue 16, defects 1 and 5).

No Ray here: a throwaway HTTP server in this process plays "another cluster" answering on the ports, and a
`sleep` plays the process `up` started. The real clusters are in tests/integration/test_loopback.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from laborlm.cluster.local import ClusterState, _save, _wait_http, status
from laborlm.cluster.loopback import address_host, check_ports_free, exposed_sockets, is_loopback, port_free
from laborlm.errors import LaborLMError


class _Impostor(BaseHTTPRequestHandler):
    """Answers like a healthy Ray dashboard with two nodes and a healthy MLflow server."""

    def do_GET(self) -> None:
        nodes = {"data": {"result": {"result": [{"state": "ALIVE"}, {"state": "ALIVE"}]}}}
        body = json.dumps(nodes if "nodes" in self.path else {"version": "x"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    """Port of an HTTP server that is not ours, answering every readiness and health URL with 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def our_process() -> Iterator[int]:
    """A live process standing for what `up` started (it listens on nothing)."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process.pid
    process.kill()
    process.wait()


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "localhost")))
    assert not any(
        map(is_loopback, ("0.0.0.0", "::", "192.0.2.2", "10.0.0.1", "::ffff:10.0.0.1", "example.org"))
    )
    assert [address_host(a) for a in ("127.0.0.1:6379", "ray://localhost:10001", "http://10.0.0.1:8265")] == [
        "127.0.0.1",
        "localhost",
        "10.0.0.1",
    ]


def test_a_taken_port_is_refused_naming_it(impostor: int) -> None:
    assert not port_free("127.0.0.1", impostor)
    with pytest.raises(LaborLMError, match=rf"dashboard port {impostor}.*held by"):
        check_ports_free("127.0.0.1", {"dashboard": impostor})


def test_mlflow_server_refuses_a_taken_port_instead_of_trusting_whoever_answers(
    tmp_path: Path, impostor: int
) -> None:
    from laborlm.tracking.server import start_mlflow_server

    with pytest.raises(LaborLMError, match=f"MLflow port {impostor}"):
        start_mlflow_server(tmp_path, port=impostor, timeout=20)


def test_readiness_answered_by_another_process_is_not_ours(
    tmp_path: Path, impostor: int, our_process: int
) -> None:
    state = ClusterState(
        str(tmp_path),
        "127.0.0.1",
        str(tmp_path / "no-such-temp"),
        f"127.0.0.1:{impostor}",
        f"http://127.0.0.1:{impostor}",
        None,
        {"head": our_process},
    )
    _wait_http(f"{state.dashboard_url}/api/version", 2, "x", tmp_path / "log", our_process)  # anyone's answer
    with pytest.raises(LaborLMError, match="did not answer"):
        _wait_http(
            f"{state.dashboard_url}/api/version",
            2,
            "the Ray head",
            tmp_path / "log",
            our_process,
            owner=state,
            ports=(impostor,),
        )


def test_status_reports_no_health_answered_by_another_cluster(
    tmp_path: Path, impostor: int, our_process: int
) -> None:
    """A folder whose processes do not hold its ports (another cluster does) shows no nodes and no MLflow."""
    url = f"http://127.0.0.1:{impostor}"
    _save(
        ClusterState(
            str(tmp_path),
            "127.0.0.1",
            str(tmp_path / "no-such-temp"),
            f"127.0.0.1:{impostor}",
            url,
            url,
            {"head": our_process, "mlflow": our_process},
        )
    )
    info = status(tmp_path)
    assert info["processes"] == {"head": True, "mlflow": True}
    assert info["ray_nodes_alive"] == 0 and info["mlflow_healthy"] is False


def test_exposed_sockets_sees_a_listener_on_all_interfaces() -> None:
    import os

    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("0.0.0.0", port) in {(a, p) for _, _, a, p in exposed_sockets([os.getpid()])}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port not in {p for _, _, _, p in exposed_sockets([os.getpid()])}
