"""Helpers shared by the LLM scoring tests (unit and integration).

A tiny world: a 40-occupation taxonomy, sticky synthetic careers, a byte-level
BPE tokenizer trained (by ``corpus.train_tokenizer``) on their rendered texts, and a ~150k-parameter Llama
briefly trained on them, so that its distributions are peaked like a fine-tuned model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from laborlm import schema
from laborlm.corpus.manifest import CorpusManifest, OutputShard
from laborlm.corpus.render import render_table
from laborlm.corpus.template import Template, load_template
from laborlm.corpus.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer
from laborlm.occupations.taxonomy import Taxonomy


@dataclass
class TinyWorld:
    taxonomy: Taxonomy
    template: Template
    train: pa.Table
    valid: pa.Table
    test: pa.Table
    tokenizer_dir: Path
    tokenizer: object
    model: torch.nn.Module


def tiny_taxonomy() -> Taxonomy:
    default = Taxonomy.default()
    return Taxonomy([o for o in default.occupations if not o.special][:40], name="tiny")


def sticky_panel(n_people: int, seed: int, taxonomy: Taxonomy, prefix: str) -> pa.Table:
    """Canonical panel: 2-6 years per person, 70% stays, moves favour a person's 'cluster' of 5 jobs."""
    rng = np.random.default_rng(seed)
    codes = np.array(taxonomy.codes, dtype=object)
    rows: dict[str, list[object]] = {
        c: []
        for c in (
            "person_id",
            "year",
            "occupation",
            "education",
            "region",
            "gender",
            "race",
            "birth_year",
            "source",
        )
    }
    for p in range(n_people):
        cluster = rng.integers(0, len(codes) - 5)
        years = 1990 + int(rng.integers(0, 20)) + np.arange(int(rng.integers(2, 7)))
        occ = int(cluster + rng.integers(0, 5))
        gender, race = rng.choice(list(schema.GENDERS)), rng.choice(["white", "black", None])
        for i, y in enumerate(years):
            if i and rng.random() > 0.7:
                occ = (
                    int(cluster + rng.integers(0, 5))
                    if rng.random() < 0.8
                    else int(rng.integers(0, len(codes)))
                )
            rows["person_id"].append(f"{prefix}{p:04d}")
            rows["year"].append(int(y))
            rows["occupation"].append(codes[occ])
            rows["education"].append(rng.choice(["high_school", "bachelors", None]))
            rows["region"].append("south")
            rows["gender"].append(gender)
            rows["race"].append(race)
            rows["birth_year"].append(int(years[0] - 22))
            rows["source"].append("psid")
    return schema.conform(
        pa.table({k: pa.array(v, schema.PANEL_SCHEMA.field(k).type) for k, v in rows.items()})
    )


def write_corpus(panel: pa.Table, taxonomy: Taxonomy, template: Template, out: Path) -> Path:
    """A one-shard corpus folder (what ``build_corpus`` writes, minus Ray) for ``train_tokenizer``."""
    out.mkdir(parents=True, exist_ok=True)
    rendered = render_table(panel, taxonomy, template)
    rendered = rendered.set_column(
        rendered.schema.get_field_index("split"),
        "split",
        pa.array(["train"] * rendered.num_rows, pa.string()),
    )
    pq.write_table(rendered, out / "part-00000.parquet")
    taxonomy.to_csv(out / "taxonomy.csv")
    (out / "template.yaml").write_text(template.to_yaml(), encoding="utf-8")
    CorpusManifest(
        config_hash="test",
        config={},
        template={"name": template.name},
        taxonomy={"name": taxonomy.name},
        inputs=(),
        rows_in=panel.num_rows,
        rows_kept=panel.num_rows,
        rows_rejected=0,
        people={"psid": {"train": rendered.num_rows}},
        chars=0,
        files=(
            OutputShard("part-00000.parquet", rendered.num_rows, (out / "part-00000.parquet").stat().st_size),
        ),
    ).write(out)
    return out


def tiny_llama(vocab_size: int, seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def train_lm(model: torch.nn.Module, texts: list[str], tokenizer: object, steps: int, seed: int = 0) -> None:
    """A few AdamW steps of full-text causal-LM loss (the training engine's job in real runs)."""
    encoded = [torch.as_tensor(tokenizer(t)["input_ids"]) for t in texts]  # type: ignore[operator]
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = [encoded[i] for i in rng.choice(len(encoded), size=16)]
        width = max(len(b) for b in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)  # type: ignore[attr-defined]
        labels = torch.full((len(batch), width), -100)
        for i, b in enumerate(batch):
            ids[i, : len(b)] = b
            labels[i, : len(b)] = b
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def build_world(root: Path, train_steps: int = 40) -> TinyWorld:
    """Panels, a tokenizer trained on the train texts (plus one line per label, as a resume corpus has),
    and a tiny Llama trained for ``train_steps`` steps. Takes a few seconds on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    taxonomy, template = tiny_taxonomy(), load_template("labor-llm")
    train = sticky_panel(120, 0, taxonomy, "a")
    valid = sticky_panel(30, 1, taxonomy, "b")
    test = sticky_panel(20, 2, taxonomy, "c")
    # The tokenizer sees every label at least once, as a resume corpus would.
    every = schema.conform(
        pa.table(
            {
                "person_id": [f"z{i:03d}" for i in range(len(taxonomy))],
                "year": pa.array([2000] * len(taxonomy), pa.int32()),
                "occupation": list(taxonomy.codes),
                "source": ["psid"] * len(taxonomy),
            }
        )
    )
    tok_dir = train_tokenizer(
        write_corpus(pa.concat_tables([train, every]), taxonomy, template, root / "corpus"),
        root / "tokenizer",
        # Multi-token titles: these tests exercise the trie scorer (label tokens: tests/unit/corpus).
        TokenizerConfig(vocab_size=700, min_frequency=2, label_tokens=False),
    )
    tokenizer = load_tokenizer(tok_dir)
    model = tiny_llama(len(tokenizer))
    texts = render_table(train, taxonomy, template).column("text").to_pylist()
    train_lm(model, texts, tokenizer, steps=train_steps)
    torch.set_num_threads(threads)
    return TinyWorld(taxonomy, template, train, valid, test, tok_dir, tokenizer, model)
