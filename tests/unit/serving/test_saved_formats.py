"""One loader for every saved model LaborLM writes, the folders of `laborlm train` included (issue 15 item 3).

A `laborlm train` phase folder (``<out_dir>/<phase>/model``) is written here the way ``training/loop.py``'s
``_export`` writes it: ``save_pretrained`` of the model (full weights or a LoRA adapter) and the tokenizer, the
corpus's ``taxonomy.csv`` and ``laborlm_model.json``. Before the loader knew it, ``laborlm evaluate`` and
``predict`` failed on it with ``format None, expected 'laborlm.neural/1'``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from laborlm.cli import main
from laborlm.corpus.template import load_template
from laborlm.corpus.tokenizer import load_tokenizer
from laborlm.errors import CheckpointError
from laborlm.llm.model import LlmOccupationModel
from laborlm.models.registry import load_model, saved_model_kind
from laborlm.training.models import write_model_info
from unit.llm.llm_world import sticky_panel, tiny_llama, tiny_taxonomy

# What _export records (plus what the workflow adds at the end of a phase).
_INFO = {
    "template": "labor-llm",
    "taxonomy": "tiny",
    "corpus_config_hash": "x",
    "phase": "finetune",
    "run_name": "train-test",
    "step": 4,
    "valid_loss": 3.2,
    "final_step": 4,
}


@pytest.fixture(scope="module")
def train_out(saved_llm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<out_dir>`` of a `laborlm train` run: a full-weights ``pretrain/model``, a LoRA ``finetune/model``."""
    root = tmp_path_factory.mktemp("train_out")
    tokenizer = load_tokenizer(saved_llm / "tokenizer")
    full = root / "pretrain" / "model"
    lm = tiny_llama(len(tokenizer), seed=1)
    lm.save_pretrained(str(full))
    tokenizer.save_pretrained(str(full))
    shutil.copy(saved_llm / "taxonomy.csv", full / "taxonomy.csv")
    write_model_info(full, {**_INFO, "phase": "pretrain", "kind": "full", "base_model": "tiny"})

    from peft import LoraConfig, get_peft_model

    adapter = root / "finetune" / "model"
    peft = get_peft_model(
        tiny_llama(len(tokenizer), seed=1),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    with torch.no_grad():  # a trained adapter: B != 0, so merging changes the weights
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)
    peft.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    shutil.copy(saved_llm / "taxonomy.csv", adapter / "taxonomy.csv")
    write_model_info(adapter, {**_INFO, "kind": "lora_adapter", "base_model": str(full)})
    return root


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny_panel") / "panel.parquet"
    pq.write_table(sticky_panel(12, 5, tiny_taxonomy(), "e"), path)
    return path


def test_a_train_folder_loads_and_scores_like_the_model_it_holds(train_out: Path, panel_file: Path) -> None:
    folder = train_out / "pretrain" / "model"
    assert saved_model_kind(folder) == "trained_lm"
    model = load_model(folder)
    assert isinstance(model, LlmOccupationModel) and model.name == "llm-pretrain"
    assert model.taxonomy.name == "tiny" and model.template.name == "labor-llm"
    panel = pq.read_table(panel_file).slice(0, 6)
    direct = LlmOccupationModel.from_pretrained(folder, folder, "labor-llm", model.taxonomy)
    assert np.allclose(model.log_probs(panel), direct.log_probs(panel))


def test_a_lora_train_folder_is_scored_merged(train_out: Path, panel_file: Path) -> None:
    folder = train_out / "finetune" / "model"
    model = load_model(folder)  # no merged/ beside it: merged in memory onto the recorded base
    base = load_model(train_out / "pretrain" / "model")
    panel = pq.read_table(panel_file).slice(0, 6)
    merged = model.log_probs(panel)
    assert np.isfinite(merged).all() and not np.allclose(merged, base.log_probs(panel))  # the adapter counts
    # With the workflow's merged/ folder beside it, that one is used (same weights, so same numbers).
    assert isinstance(model, LlmOccupationModel)
    model.lm.save_pretrained(str(train_out / "finetune" / "merged"))
    assert np.allclose(load_model(folder).log_probs(panel), merged, atol=1e-5)


def test_evaluate_and_predict_take_a_train_folder(
    train_out: Path, panel_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = train_out / "pretrain" / "model"
    metrics = tmp_path / "metrics.json"
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(folder),
                "--panel",
                str(panel_file),
                "--split",
                "all",
                "--out",
                str(metrics),
                "--no-mlflow",
            ]
        )
        == 0
    )
    assert json.loads(metrics.read_text())["person_years"] == pq.read_table(panel_file).num_rows
    careers = tmp_path / "careers.jsonl"
    code = tiny_taxonomy().codes[0]
    careers.write_text(json.dumps({"history": [{"year": 2001, "occupation": code}]}) + "\n")
    capsys.readouterr()
    assert main(["-q", "predict", "--model", str(folder), "--input", str(careers), "--top-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["top_k"]) == 2


def test_the_loader_says_what_it_found(train_out: Path, tmp_path: Path) -> None:
    # The run folder instead of a model folder: the models below it are named.
    with pytest.raises(
        CheckpointError, match=r"found finetune, pretrain; saved models below it: .*finetune/model"
    ):
        saved_model_kind(train_out)
    # A bare Hugging Face folder: which metadata is missing and why it matters.
    hf = tmp_path / "hf"
    shutil.copytree(train_out / "pretrain" / "model", hf)
    (hf / "laborlm_model.json").unlink()
    with pytest.raises(CheckpointError, match="a Hugging Face model without laborlm_llm.json"):
        load_model(hf)
    # A train folder without its taxonomy.
    (tmp_path / "nt").mkdir()
    for f in (train_out / "pretrain" / "model").iterdir():
        if f.name != "taxonomy.csv":
            shutil.copy(f, tmp_path / "nt" / f.name)
    with pytest.raises(CheckpointError, match="without taxonomy.csv"):
        load_model(tmp_path / "nt")
    # Another neural format version, and a missing folder.
    (tmp_path / "nn").mkdir()
    (tmp_path / "nn" / "config.json").write_text(json.dumps({"format": "laborlm.neural/9"}))
    with pytest.raises(CheckpointError, match=r"format 'laborlm.neural/9', expected 'laborlm.neural/1'"):
        load_model(tmp_path / "nn")
    with pytest.raises(CheckpointError, match="no such model folder"):
        load_model(tmp_path / "absent")


def test_user_template_in_the_folder_wins(train_out: Path, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(train_out / "pretrain" / "model", folder)
    write_model_info(folder, {**_INFO, "kind": "full", "template": "my-own"})
    with pytest.raises(CheckpointError, match="template 'my-own', which is not built in"):
        load_model(folder)
    (folder / "template.yaml").write_text(load_template("codes").to_yaml())
    assert load_model(folder).template.name == "codes"
