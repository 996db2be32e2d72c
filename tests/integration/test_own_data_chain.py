"""A user's own survey, end to end with the command line only (issue 15's acceptance), on a 300-person slice of
the public NLS Young Women panel: import with the survey's maps, fit, evaluate, benchmark, predict, and a
language model: corpus build, train (survey only: no resume corpus shares its 13 groups), evaluate, predict.
README "Your own data: the NLS Young Women walkthrough" runs the same commands on the whole panel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laborlm.cli import main
from nls_slice import IMPORT_MAPS, nls_slice

PEOPLE = 300


@pytest.fixture(scope="module")
def survey_slice(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 300 women of the file, every row of theirs, exactly as the file has them."""
    return nls_slice(shared_data, tmp_path_factory.mktemp("nlsw") / "nlsw_slice.csv", PEOPLE)


def test_import_fit_evaluate_benchmark_train_predict_on_a_real_survey(
    ray_session: object,
    survey_slice: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    panel, models = tmp_path / "nlsw", tmp_path / "models"
    assert (
        main(
            [
                "-q",
                "data",
                "import",
                str(survey_slice),
                "--out",
                str(panel),
                "--rejects",
                str(tmp_path / "rejects.jsonl"),
                "--source",
                "nlsw",
                *IMPORT_MAPS,
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out
    rows = len(survey_slice.read_text().splitlines()) - 1
    assert f"rows in {rows:,} = kept" in summary and "recoded race (--map)" in summary
    assert (
        "people, taxonomy nlsw_occupations)" in summary
    )  # (a woman whose every row lacks occ_code drops out)
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert all(r["field"] == "occupation" for r in rejects)  # only the rows without an occ_code

    for name in ("unigram", "markov1"):
        assert main(["-q", "fit", name, "--panel", str(panel), "--out", str(models / name)]) == 0
        assert f"{name} fitted on" in capsys.readouterr().out
    assert (models / "mlflow.db").is_file()  # one store beside the fitted models

    scores = {}
    for name in ("unigram", "markov1"):
        out = tmp_path / f"eval-{name}.json"
        assert (
            main(
                [
                    "-q",
                    "evaluate",
                    "--model",
                    str(models / name),
                    "--panel",
                    str(panel),
                    "--out",
                    str(out),
                    "--no-mlflow",
                ]
            )
            == 0
        )
        scores[name] = json.loads(out.read_text())
    capsys.readouterr()
    assert (
        scores["markov1"]["perplexity"] < scores["unigram"]["perplexity"] < 13
    )  # the floor beats a uniform guess
    assert scores["markov1"]["oracle_perplexity"] is None  # a real survey has no oracle

    bench = tmp_path / "bench"
    assert (
        main(
            [
                "-q",
                "benchmark",
                "careers",
                "--panel",
                str(panel),
                f"out_dir={bench}",
                "models=markov1",
                "seeds=0",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "| model (test perplexity) | nlsw |"
    assert "Oracle" not in table and "Unigram (occupation frequencies)" in table
    result = json.loads((bench / "comparison.json").read_text())
    for name in ("unigram", "markov1"):  # the same split and the same harness as `fit` + `evaluate`
        assert result["metrics"]["nlsw"][name][0]["perplexity"] == pytest.approx(
            scores[name]["perplexity"], rel=1e-9
        )
    assert result["table"]["flags"] == []

    careers = tmp_path / "careers.jsonl"
    careers.write_text(
        json.dumps(
            {
                "person_id": "w1",
                "covariates": {"race": "black", "birth_year": 1950},
                "history": [{"year": 1970, "occupation": "4"}, {"year": 1972, "occupation": "4"}],
                "next_year": 1973,
            }
        )
        + "\n"
    )
    assert (
        main(["-q", "predict", "--model", str(models / "markov1"), "--input", str(careers), "--top-k", "3"])
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["person_id"] == "w1" and answer["next_year"] == 1973
    assert answer["top_k"][0] == {
        **answer["top_k"][0],
        "code": "4",
        "title": "Clerical and unskilled workers",
    }
    assert sum(k["probability"] for k in answer["top_k"]) < 1

    # The language model on the same survey: texts, a short survey-only training, the same harness.
    corpus, run = tmp_path / "corpus", tmp_path / "lm"
    assert main(["-q", "corpus", "build", "--input", str(panel), "--out", str(corpus)]) == 0
    monkeypatch.chdir(tmp_path)  # a relative corpus path, as users type it (Ray workers run elsewhere)
    assert (
        main(
            [
                "-q",
                "train",
                f"out_dir={run}",
                "pretrain.enabled=false",
                "finetune.init=model",
                "finetune.corpus=corpus",
                "finetune.synthesize=null",
                "finetune.max_steps=30",
                "finetune.warmup_steps=3",
                "finetune.lr=1e-2",
                "finetune.eval_every_steps=10",
                "finetune.checkpoint_every_steps=30",
                "finetune.eval_blocks=16",
                "block_size=128",
                "micro_batch_size=4",
                "tokenizer_vocab_size=400",
                "model.size=llama-200k",
            ]
        )
        == 0
    )
    capsys.readouterr()
    info = json.loads((run / "finetune" / "model" / "laborlm_model.json").read_text())
    assert info["completed"] and (run / "finetune" / "model" / "template.yaml").is_file()
    assert (run / "finetune" / "model" / "taxonomy.csv").is_file()
    out = tmp_path / "eval-lm.json"
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(run / "finetune" / "model"),
                "--panel",
                str(panel),
                "--out",
                str(out),
                "--no-mlflow",
            ]
        )
        == 0
    )
    capsys.readouterr()
    lm = json.loads(out.read_text())
    assert 1 < lm["perplexity"] < 16  # a proper distribution over the 16 labels, already better than uniform
    assert lm["person_years"] == scores["unigram"]["person_years"]
    assert main(["-q", "predict", "--model", str(run / "finetune" / "model"), "--input", str(careers)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["person_id"] == "w1" and 0 < sum(k["probability"] for k in answer["top_k"]) <= 1 + 1e-9
