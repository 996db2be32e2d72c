"""The workflows on a user's panels from the command line (issue 15): `laborlm quickstart survey_panel=DIR`,
`laborlm benchmark llm survey_panel=DIR resume_panel=DIR`, `laborlm sweep ... survey_panel=DIR resume_panel=DIR`
and `laborlm fit embedding lm=DIR [lm_init=random]`, on slices of the public NLS Young Women panel imported as
README's walkthrough imports it (women 1-150 as the survey, 151-300 as a "resume" panel in the same 13 groups).
Shortened trainings: these check the plumbing (columns, rows, no oracle, what is pretrained on what), not the
numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from laborlm.cli import main
from laborlm.corpus.tokenizer import load_tokenizer
from laborlm.llm.stay_move import stay_token_id
from nls_slice import REPO, import_nls, nls_slice
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.usefixtures("ray_session")]

TINY_LM = ["model.size=llama-200k", "block_size=128", "tokenizer_vocab_size=400", "micro_batch_size=4"]
STEPS = [
    "finetune.max_steps=20",
    "finetune.warmup_steps=2",
    "finetune.eval_every_steps=10",
    "finetune.checkpoint_every_steps=20",
    "finetune.eval_blocks=16",
    "finetune.occupation_eval_people=20",
]


@pytest.fixture(scope="module")
def panels(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(survey, resumes): two imported NLS slices, canonical panel folders named nlsw and nlsw_resumes."""
    folder = tmp_path_factory.mktemp("own_data")
    out = []
    for name, skip in (("nlsw", 0), ("nlsw_resumes", 150)):
        csv_file = nls_slice(shared_data, folder / f"{name}.csv", 150, skip=skip)
        assert main(import_nls(csv_file, folder / name, source=name)) == 0
        out.append(folder / name)
    return out[0], out[1]


def _rows(markdown: str) -> dict[str, float]:
    """Row label -> mean test perplexity, from the first table that has the label (the comparison table comes
    before the by-transition table, whose first column is the first-year perplexity)."""
    rows: dict[str, float] = {}
    for m in re.finditer(r"^\| ([^|]+?) \| ([\d.]+)(?: ± [\d.]+)? \|", markdown, re.MULTILINE):
        rows.setdefault(m.group(1), float(m.group(2)))
    return rows


def test_quickstart_and_fit_embedding_on_a_user_panel(
    panels: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    survey, _ = panels
    out = tmp_path / "qs"
    assert (
        main(
            [
                "-q",
                "quickstart",
                f"out_dir={out}",
                f"survey_panel={survey}",
                "test_people=0",
                "models=unigram,markov1,two_stage+pretrain",
                "mlflow_server=false",
                "register_as=null",
                "train_overrides=" + ",".join(TINY_LM + STEPS),
            ]
        )
        == 0
    )
    report = capsys.readouterr().out
    assert report.startswith("# LaborLM quickstart (nlsw, your panel;")
    assert "| model (test perplexity) | nlsw |" in report  # the column is the panel's folder name
    ppl = _rows(report)
    assert {
        "Unigram (occupation frequencies)",
        "Markov chain, order 1",
        "LLM llama-200k, fine-tuned on nlsw",
    } <= set(ppl), ppl
    embedding = "LLM llama-200k embedding + two-stage head, fine-tuned on nlsw"
    control = "Control: the same head on a random llama-200k (no language model)"
    assert {embedding, control} <= set(ppl)
    assert not any(
        "Oracle" in k or "pretrain" in k for k in ppl
    )  # a real survey; no resume panel: no +pretrain
    assert "Nothing was pretrained" in report
    assert (out / "corpus" / "nlsw" / "manifest.json").is_file() and not (out / "corpus" / "resumes").exists()
    assert not (out / "data").exists()  # nothing synthetic was generated
    lm = out / "train" / "finetune" / "model"

    # The same embedding model and its control from the command line, on the quickstart's language model.
    fitted = {}
    for name, extra in (("embedding", []), ("control", ["lm_init=random"])):
        assert (
            main(
                [
                    "-q",
                    "fit",
                    "embedding",
                    "--panel",
                    str(survey),
                    "--out",
                    str(tmp_path / name),
                    "--no-mlflow",
                    f"lm={lm}",
                    *extra,
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "-q",
                    "evaluate",
                    "--model",
                    str(tmp_path / name),
                    "--panel",
                    str(survey),
                    "--out",
                    str(tmp_path / f"{name}.json"),
                    "--no-mlflow",
                ]
            )
            == 0
        )
        fitted[name] = json.loads((tmp_path / f"{name}.json").read_text())["perplexity"]
    capsys.readouterr()
    assert fitted["embedding"] == pytest.approx(ppl[embedding], rel=0.02)  # the same split, head and seed
    assert fitted["control"] == pytest.approx(ppl[control], rel=0.02)
    unigram = tmp_path / "unigram"
    assert main(["-q", "fit", "unigram", "--panel", str(survey), "--out", str(unigram), "--no-mlflow"]) == 0
    assert (
        main(
            [
                "-q",
                "fit",
                "embedding",
                "--panel",
                str(survey),
                "--out",
                str(tmp_path / "bad"),
                "--no-mlflow",
                f"lm={unigram}",
            ]
        )
        == 2
    )  # not a language model: a one-line error
    assert "not a language model" in capsys.readouterr().err


def test_benchmark_llm_on_a_user_survey_and_resume_panel(
    panels: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    survey, resumes = panels
    out = tmp_path / "bench"
    assert (
        main(
            [
                "-q",
                "benchmark",
                "llm",
                f"out_dir={out}",
                f"survey_panel={survey}",
                f"resume_panel={resumes}",
                "arms=fine-tuned,not-fine-tuned,larger-less-data",
                "careers_models=markov1",
                "pretrain_steps=6",
                "finetune_steps=6",
                "block_size=128",
                "test_people=15",
                "tracking.enabled=false",
                (
                    "train_overrides=pretrain.eval_every_steps=3,finetune.eval_every_steps=3,pretrain.eval_blocks=8,"
                    "finetune.eval_blocks=8,pretrain.warmup_steps=1,finetune.warmup_steps=1,tokenizer_vocab_size=400,"
                    "pretrain.occupation_eval_people=10,finetune.occupation_eval_people=10"
                ),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "| model (test perplexity) | nlsw |"
    ppl = _rows(table)
    assert len([k for k in ppl if k.startswith("LLM ")]) == 3 and "Unigram (occupation frequencies)" in ppl
    assert not any("Oracle" in k for k in ppl)
    # Every pretraining arm read the user's resume panel (one corpus: the fraction arm keeps its share of it).
    manifest = json.loads((out / "corpus" / "labor-llm-resumes" / "manifest.json").read_text())
    assert str(resumes.resolve()) in json.dumps(manifest)
    assert not (out / "data").exists()  # nothing synthetic was generated
    larger = yaml.safe_load((out / "arms" / "larger-less-data" / "config.yaml").read_text())
    assert larger["pretrain"]["data_fraction"] == 0.2 and larger["model"]["size"] == "llama-10m"


def test_sweep_on_a_user_survey_and_resume_panel(
    panels: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    survey, resumes = panels
    overrides = [
        "block_size=128",
        "micro_batch_size=4",
        "pretrain.max_steps=6",
        "finetune.max_steps=4",
        "pretrain.eval_every_steps=3",
        "finetune.eval_every_steps=2",
        "pretrain.checkpoint_every_steps=6",
        "finetune.checkpoint_every_steps=4",
        "pretrain.warmup_steps=1",
        "finetune.warmup_steps=1",
        "pretrain.eval_blocks=8",
        "finetune.eval_blocks=8",
        "pretrain.occupation_eval_people=10",
        "finetune.occupation_eval_people=10",
    ]
    args = [
        "-q",
        "sweep",
        str(REPO / "jobs" / "sweep_scaling.yaml"),
        f"survey_panel={survey}",
        f"resume_panel={resumes}",
        f"out_dir={tmp_path}",
        "name=panels",
        "data_fractions=1.0",
        "models=llama-200k",
        "valid_people=5",
        "test_people=10",
        "pretrain_epochs=null",
        "tokenizer_vocab_size=400",
        "max_concurrent_trials=1",
        "tracking.enabled=false",
        "train_overrides=" + ",".join(overrides),
    ]
    assert main(args) == 0
    capsys.readouterr()
    folder = tmp_path / "panels"
    # Trials train stay/move (the default with label tokens): the shared tokenizer has the stay token ...
    assert stay_token_id(load_tokenizer(folder / "tokenizer")) is not None
    # ... and asking for plain LMs over that tokenizer is refused, not silently mixed.
    assert main([*args, "stay_move=false"]) == 2
    assert "trained with the stay token" in capsys.readouterr().err
    rows = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["test/perplexity"] > 1 and "test/oracle_perplexity" not in rows[0]
    assert "The survey has no oracle" in (folder / "scaling.md").read_text()
    prepared = json.loads((folder / "prepared.json").read_text())
    assert (
        prepared["survey_panel"] == str(survey.resolve()) and Path(prepared["finetune_corpus"]).name == "nlsw"
    )
    assert not (folder / "data").exists()  # nothing synthetic was generated
