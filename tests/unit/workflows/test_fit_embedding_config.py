"""`laborlm fit embedding`: the embedding model needs the language model it reads (lm=DIR), and lm/lm_init belong
to it alone; both are one-line errors (rc 2) before any panel is read or folder written. The fit itself runs in
tests/integration/test_own_data_workflows.py (on a quickstart's language model, against the quickstart's rows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from laborlm.cli import main
from laborlm.config import build
from laborlm.errors import ConfigError
from laborlm.workflows.fit import FitJobConfig


def _config(**data: object) -> FitJobConfig:
    return build(FitJobConfig, {"panel": "p", "out": "o", **data}, source="test")


def test_the_embedding_model_needs_a_language_model_and_lm_is_its_alone() -> None:
    with pytest.raises(ConfigError, match="lm: the embedding model needs the language model"):
        _config(model="embedding")
    with pytest.raises(ConfigError, match="pretrain_panel: the embedding model's language model"):
        _config(model="embedding", lm="lm", pretrain_panel="r")
    with pytest.raises(ConfigError, match=r"lm, lm_init: only for the embedding model .*'markov1'"):
        _config(model="markov1", lm="lm")
    with pytest.raises(ConfigError, match=r"unknown model 'embeding'; known: .*, embedding"):
        _config(model="embeding")
    assert _config(model="embedding", lm="lm", lm_init="random").lm == Path("lm")


def test_the_command_line_refuses_before_reading_the_panel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "-q",
                "fit",
                "embedding",
                "--panel",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "m"),
                "--no-mlflow",
            ]
        )
        == 2
    )
    assert "lm=DIR" in capsys.readouterr().err and not (tmp_path / "m").exists()
