"""The registered model served by `mlflow models serve` on loopback answers careers over HTTP.

Registers a tiny LLM (random weights: the answer's shape is tested, not its quality), promotes it to
@champion, serves ``models:/NAME@champion`` in its own session (setsid) and stops it by that PID at the end,
even when an assertion fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laborlm.serving.registry import promote, register_model
from unit.serving.serving_models import save_tiny_llm
from unit.serving.test_careers import career

NAME = "http-llm"
START_TIMEOUT_S = 120  # loading mlflow + torch + the model on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: Any = None) -> tuple[int, str]:
    """(status, text) of a GET, or a JSON POST when ``body`` is given; HTTP errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = register_model(save_tiny_llm(tmp_path), NAME, uri)
    promote(NAME, version, tracking_uri=uri)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        # mlflow execs `uvicorn` by name: the venv's bin must be on PATH even when it is not activated.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{NAME}@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"mlflow models serve exited with {proc.returncode}:\n{(tmp_path / 'serve.log').read_text()}"
                )
            try:
                if call(f"{base}/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /health after {START_TIMEOUT_S} s:\n{(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.5)
        yield base
    finally:
        # The server runs in its own session: stop its process group by our child's PID, never by name.
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def test_served_champion_answers_top_k_and_rejects_bad_careers(server: str) -> None:
    good = [career(), career(person_id="w2", next_year=2007)]
    status, text = call(f"{server}/invocations", {"inputs": good, "params": {"top_k": 3}})
    assert status == 200, text
    predictions = json.loads(text)["predictions"]
    assert [(p["person_id"], p["next_year"]) for p in predictions] == [("w1", 2004), ("w2", 2007)]
    for p in predictions:
        probs = [b["probability"] for b in p["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-9
        assert all(set(b) == {"code", "title", "probability"} for b in p["top_k"])
    # The DataFrame form works too, with the default k.
    status, text = call(f"{server}/invocations", {"dataframe_records": good})
    assert status == 200 and len(json.loads(text)["predictions"][0]["top_k"]) == 5, text

    bad = [career(), career(history=[{"year": 2001, "occupation": "9999"}])]
    status, text = call(f"{server}/invocations", {"inputs": bad})
    assert status == 400, text
    error = json.loads(text)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert (
        "career 1: field 'history[0].occupation': '9999' is not in the occupation taxonomy"
        in error["message"]
    )
    status, text = call(f"{server}/invocations", {"inputs": [career()], "params": {"top_k": 0}})
    assert status == 400 and "params.top_k" in text, text
    status, text = call(f"{server}/invocations", {"inputs": [{"covariates": {}}]})
    assert status == 400 and "history" in text, text

    # Still alive and answering after the bad requests.
    assert call(f"{server}/health")[0] == 200
    assert call(f"{server}/invocations", {"inputs": good[:1]})[0] == 200
