"""Registering saved models as MLflow pyfunc models, aliases, and predictions through mlflow.pyfunc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from laborlm.cli import main
from laborlm.errors import CheckpointError, LaborLMError
from laborlm.serving.registry import pip_requirements, promote, register_model, resolve
from laborlm.tracking.mlflow_tracker import mlflow_uri
from unit.serving.test_careers import career, check_answer


@pytest.fixture(scope="session")
def registered(saved_llm: Path, tracking_uri: str) -> str:
    """The tiny LLM registered once as `serving-llm`, version 1 @candidate."""
    return register_model(saved_llm, "serving-llm", tracking_uri)


def test_register_sets_candidate_and_promote_moves_champion(
    registered: str, saved_markov: Path, tracking_uri: str
) -> None:
    assert registered == "1"
    assert resolve("models:/serving-llm@candidate", tracking_uri).version == "1"
    promote("serving-llm", registered, tracking_uri=tracking_uri)
    assert resolve("models:/serving-llm@champion", tracking_uri).version == "1"
    # Any saved model type registers the same way; the alias follows promote, old versions keep theirs.
    assert register_model(saved_markov, "serving-llm", tracking_uri, alias=None) == "2"
    promote("serving-llm", 2, tracking_uri=tracking_uri)
    assert resolve("models:/serving-llm@champion", tracking_uri).version == "2"
    assert resolve("models:/serving-llm/1", tracking_uri).version == "1"
    promote("serving-llm", 1, tracking_uri=tracking_uri)
    with pytest.raises(LaborLMError, match="serving-llm"):
        promote("serving-llm", 9, tracking_uri=tracking_uri)
    with pytest.raises(LaborLMError, match="models:/NAME@ALIAS"):
        resolve("serving-llm@champion", tracking_uri)
    with pytest.raises(LaborLMError, match="nope"):
        resolve("models:/serving-llm@nope", tracking_uri)


def test_register_refuses_a_folder_without_a_model(tmp_path: Path, tracking_uri: str) -> None:
    with pytest.raises(CheckpointError):
        register_model(tmp_path, "nothing", tracking_uri)


def test_pip_requirements_pin_laborlm_and_skip_dev_extras() -> None:
    reqs = pip_requirements()
    assert reqs[0].startswith("laborlm==")
    assert any(r.startswith("torch==") for r in reqs) and any(r.startswith("mlflow==") for r in reqs)
    assert not any(r.startswith(("pytest", "ruff", "mypy")) for r in reqs)


def test_pyfunc_round_trip_through_the_alias(registered: str, tracking_uri: str) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    promote("serving-llm", registered, tracking_uri=tracking_uri)
    with mlflow_uri(tracking_uri):  # not mlflow.set_tracking_uri: it would leak into later tests' environment
        model = mlflow.pyfunc.load_model("models:/serving-llm@champion")
    signature = model.metadata.signature
    assert signature.params.to_dict() == [{"name": "top_k", "type": "long", "default": 5, "shape": None}]
    assert "history" in signature.inputs.input_names()
    assert model.metadata.metadata["laborlm_career_schema"]["required"] == ["history"]
    careers: list[dict[str, Any]] = [career(), career(person_id="w2", next_year=2007)]
    answer = model.predict(careers, params={"top_k": 3})
    assert [a["person_id"] for a in answer] == ["w1", "w2"]
    tax = model.unwrap_python_model().model.taxonomy
    check_answer(answer, tax, 3)
    # A DataFrame where only one career has next_year (NaN in the other) is valid, and the default k is 5.
    frame = pd.DataFrame([career(), career(next_year=2010)])
    assert [a["next_year"] for a in model.predict(frame)] == [2004, 2010]
    check_answer(model.predict(frame), tax, 5)
    with pytest.raises(MlflowException) as info:
        model.predict([career(history=[{"year": 2001, "occupation": "9999"}])])
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.get_http_status_code() == 400
    assert (
        "career 0: field 'history[0].occupation': '9999' is not in the occupation taxonomy"
        in info.value.message
    )


def test_cli_predict_and_promote_through_the_registry(
    registered: str, saved_llm: Path, tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-q", "registry", "promote", "serving-llm", registered, "--tracking-uri", tracking_uri]) == 0
    src = tmp_path / "careers.jsonl"
    src.write_text(json.dumps(career()) + "\n")
    capsys.readouterr()
    args = ["-q", "predict", "--input", str(src), "--top-k", "2"]
    assert main([*args, "--model", "models:/serving-llm@champion", "--tracking-uri", tracking_uri]) == 0
    via_registry = json.loads(capsys.readouterr().out)
    assert main([*args, "--model", str(saved_llm)]) == 0
    via_folder = json.loads(capsys.readouterr().out)
    assert [b["code"] for b in via_registry["top_k"]] == [b["code"] for b in via_folder["top_k"]]
    assert [b["probability"] for b in via_registry["top_k"]] == pytest.approx(
        [b["probability"] for b in via_folder["top_k"]]
    )
    assert main([*args, "--model", "models:/serving-llm@nope", "--tracking-uri", tracking_uri]) == 2
    assert "models:/serving-llm@nope" in capsys.readouterr().err
