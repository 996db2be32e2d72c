"""The corpus pipeline on real local Ray: accounting, rejects, idempotency, determinism, tokenizer and packing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from laborlm import schema
from laborlm.corpus import (
    CorpusConfig,
    PackConfig,
    TokenizerConfig,
    build_corpus,
    corpus_files,
    load_template,
    load_tokenizer,
    packed_dataset,
    read_manifest,
    render_with_spans,
    token_spans,
    train_tokenizer,
)
from laborlm.corpus.packing import pack_texts
from laborlm.errors import InputDataError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import read_panel, write_panel
from laborlm.schema import iter_careers

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "corpus_panel.csv"
pytestmark = pytest.mark.usefixtures("ray_session")


def random_people(n: int, source: str, seed: int) -> pa.Table:
    """A canonical panel of ``n`` people with 1-12 consecutive years each."""
    rng = np.random.default_rng(seed)
    taxonomy = Taxonomy.default()
    lengths = rng.integers(1, 13, size=n)
    person = np.repeat(np.arange(n), lengths)
    first = rng.integers(1970, 2005, size=n)
    within = np.arange(len(person)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    edu = np.array(schema.EDUCATION_LEVELS, dtype=object)[rng.integers(0, 8, size=len(person))]
    return pa.table(
        {
            "person_id": pa.array([f"{source[0]}{p:04d}" for p in person]),
            "year": pa.array(first[person] + within, pa.int32()),
            "occupation": pa.array(
                np.array(taxonomy.codes, dtype=object)[rng.integers(0, len(taxonomy), size=len(person))]
            ),
            "education": pa.array(edu, pa.string()),
            "gender": pa.array(np.array(schema.GENDERS, dtype=object)[rng.integers(0, 2, size=n)][person]),
            "birth_year": pa.array((first - 20)[person], pa.int32()),
            "source": pa.array([source] * len(person)),
        }
    )


def fixture_rows(sources: tuple[str, ...]) -> pa.Table:
    table = read_panel(FIXTURE).table
    return table.filter(pc.is_in(table.column("source"), pa.array(sources)))


@pytest.fixture(scope="module")
def panels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A survey panel (3 shards) and a resume panel (2 shards), written as the panel writer writes them."""
    root = tmp_path_factory.mktemp("panels")
    taxonomy = Taxonomy.default()
    survey = pa.concat_tables(
        [schema.conform(fixture_rows(("nlsy79", "psid"))), schema.conform(random_people(40, "psid", seed=1))]
    )
    resumes = pa.concat_tables(
        [schema.conform(fixture_rows(("resumes",))), schema.conform(random_people(40, "resumes", seed=2))]
    )
    write_panel(survey, root / "survey", taxonomy, rows_per_shard=100)
    write_panel(resumes, root / "resumes", taxonomy, rows_per_shard=160)
    return root / "survey", root / "resumes"


@pytest.fixture(scope="module")
def corpus(panels: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus(CorpusConfig(inputs=panels, out_dir=out, rows_per_shard=30), num_workers=2)
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Multi-token titles: these tests check spans inside titles (label tokens: tests/unit/corpus/test_label_tokens.py).
    return train_tokenizer(
        corpus, tmp_path_factory.mktemp("tok") / "t", TokenizerConfig(vocab_size=600, label_tokens=False)
    )


def shard_rows(corpus_dir: Path) -> list[dict[str, Any]]:
    return [r for f in corpus_files(corpus_dir) for r in pq.read_table(f).to_pylist()]


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_counts_add_up_and_texts_are_the_rendered_careers(panels: tuple[Path, Path], corpus: Path) -> None:
    manifest = read_manifest(corpus)
    assert manifest is not None
    shards = [*panels[0].glob("*.parquet"), *panels[1].glob("*.parquet")]
    assert (
        manifest.rows_in
        == manifest.rows_kept + manifest.rows_rejected
        == sum(pq.read_metadata(f).num_rows for f in shards)
    )
    assert manifest.rows_rejected == 0 and (corpus / "rejects.jsonl").read_text() == ""
    assert [i.grouping for i in manifest.inputs] == ["shards", "shards"]
    assert [i.people for i in manifest.inputs] == [42, 41]
    assert set(manifest.people) == {"nlsy79", "psid", "resumes"}
    assert manifest.documents == 83 and sum(manifest.people["resumes"].values()) == 41
    assert manifest.template["name"] == "labor-llm" and manifest.taxonomy["name"] == "occ1990dd"
    assert load_template(corpus / "template.yaml").fingerprint() == manifest.template["fingerprint"]
    assert all(f.rows <= 30 for f in manifest.files) and len(manifest.files) > 2

    rows = shard_rows(corpus)
    assert sum(r["n_years"] for r in rows) == manifest.rows_kept
    for f in corpus_files(corpus):
        ids = pq.read_table(f, columns=["person_id"]).column(0).to_pylist()
        assert ids == sorted(ids)
    by_id = {(r["source"], r["person_id"]): r for r in rows}
    template, taxonomy = load_template("labor-llm"), Taxonomy.default()
    for panel in panels:
        for career in iter_careers(read_panel(panel).table):
            row = by_id[(career.source, career.person_id)]
            rendered = render_with_spans(career, taxonomy, template)
            assert row["text"] == rendered.text
            assert [(s["start"], s["end"]) for s in row["spans"]] == list(rendered.spans)
            assert row["targets"] == list(career.occupations)
    a1 = by_id[("nlsy79", "a1")]
    assert a1["text"].splitlines()[4] == "1982 (high school graduate): Cashiers"


def test_rerun_is_a_no_op(panels: tuple[Path, Path], corpus: Path) -> None:
    before, manifest = mtimes(corpus), (corpus / "manifest.json").read_bytes()
    again = build_corpus(CorpusConfig(inputs=panels, out_dir=corpus, rows_per_shard=30), num_workers=1)
    assert mtimes(corpus) == before and (corpus / "manifest.json").read_bytes() == manifest
    assert again == read_manifest(corpus)


def test_worker_count_does_not_change_bytes_and_changes_rebuild(
    panels: tuple[Path, Path], corpus: Path, tmp_path: Path
) -> None:
    inputs = (tmp_path / "survey", tmp_path / "resumes")
    for src, dst in zip(panels, inputs):
        shutil.copytree(src, dst)
    out = tmp_path / "c1"
    config = CorpusConfig(inputs=inputs, out_dir=out, rows_per_shard=30)
    first = build_corpus(config, num_workers=1)
    reference = {f.name: f.read_bytes() for f in corpus_files(corpus)}
    assert {f.name: f.read_bytes() for f in corpus_files(out)} == reference

    codes = build_corpus(
        CorpusConfig(inputs=inputs, out_dir=out, template="codes", rows_per_shard=30), num_workers=2
    )
    assert codes.config_hash != first.config_hash and codes.template["name"] == "codes"
    assert "1982 (high school graduate): 276" in next(
        r["text"] for r in shard_rows(out) if r["person_id"] == "a1"
    )

    shard = next(inputs[1].glob("part-*.parquet"))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    before = mtimes(out)
    touched = build_corpus(
        CorpusConfig(inputs=inputs, out_dir=out, template="codes", rows_per_shard=30), num_workers=2
    )
    assert touched.inputs != codes.inputs and touched.config_hash == codes.config_hash
    assert all(mtimes(out)[f.name] > before[f.name] for f in touched.files)


def test_bad_row_goes_to_rejects_and_the_fraction_limit_fails_fast(tmp_path: Path) -> None:
    raw = fixture_rows(("nlsy79", "psid", "resumes")).to_pylist()
    raw[3]["occupation"] = "9999"  # a1's 1985 row: 4th data row of the file
    panel = tmp_path / "bad"
    panel.mkdir()
    pq.write_table(pa.Table.from_pylist(raw, schema=schema.PANEL_SCHEMA), panel / "part-00000.parquet")
    manifest = build_corpus(CorpusConfig(inputs=(panel,), out_dir=tmp_path / "c"))
    assert (manifest.rows_in, manifest.rows_kept, manifest.rows_rejected) == (10, 9, 1)
    assert "9 of 10 person-years rendered (1 rejected -> " in manifest.line(tmp_path / "c")
    [reject] = [json.loads(line) for line in (tmp_path / "c" / "rejects.jsonl").read_text().splitlines()]
    assert reject["file"] == str(panel / "part-00000.parquet") and reject["row"] == 4
    assert reject["field"] == "occupation" and reject["value"] == "9999" and "not a code" in reject["reason"]
    a1 = next(r for r in shard_rows(tmp_path / "c") if r["person_id"] == "a1")
    assert a1["years"] == [1982, 1983, 1984, 1986]

    with pytest.raises(InputDataError, match=r"1 of 10 rows \(10.0%\) rejected"):
        build_corpus(CorpusConfig(inputs=(panel,), out_dir=tmp_path / "strict", max_reject_fraction=0.05))
    assert sorted(p.name for p in (tmp_path / "strict").iterdir()) == ["rejects.jsonl"]


def test_persons_split_across_files_are_regrouped(
    panels: tuple[Path, Path], corpus: Path, tmp_path: Path
) -> None:
    table = read_panel(panels[0]).table
    half = np.arange(table.num_rows) % 2 == 0  # every person's rows alternate between the two files
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pq.write_table(table.filter(pa.array(half)), mixed / "a.parquet")
    pq.write_table(table.filter(pa.array(~half)), mixed / "b.parquet")
    manifest = build_corpus(CorpusConfig(inputs=(mixed,), out_dir=tmp_path / "c"), num_workers=2)
    assert manifest.inputs[0].grouping == "shuffle"
    assert all(f.name.startswith("corpus-000-b") for f in manifest.files)
    expected = {r["person_id"]: r["text"] for r in shard_rows(corpus) if r["source"] != "resumes"}
    assert {r["person_id"]: r["text"] for r in shard_rows(tmp_path / "c")} == expected


def test_tokenizer_round_trips(corpus: Path, tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert len(tok) == 600 and len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    info = json.loads((tokenizer_dir / "laborlm_tokenizer.json").read_text())
    assert info["documents"] == sum(
        read_manifest(corpus).people[s].get("train", 0) for s in ("nlsy79", "psid", "resumes")
    )
    for row in shard_rows(corpus)[:20]:
        ids = tok(row["text"])["input_ids"]
        assert ids[0] == tok.bos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == row["text"]


def test_token_spans_decode_to_the_scored_titles(corpus: Path, tokenizer_dir: Path) -> None:
    tok = load_tokenizer(tokenizer_dir)
    labels = dict(zip(Taxonomy.default().codes, Taxonomy.default().titles))
    for row in shard_rows(corpus)[:25]:
        spans = [(s["start"], s["end"]) for s in row["spans"]]
        scored = token_spans(row["text"], spans, tok)
        bare = token_spans(row["text"], spans, tok, terminator=False)
        for (a, b), (c, d), code in zip(scored.spans, bare.spans, row["targets"]):
            assert tok.decode(list(scored.input_ids[a:b])) == " " + labels[code] + "\n"
            assert tok.decode(list(bare.input_ids[c:d])) == " " + labels[code]
            assert a == c and b == d + 1


def test_packed_blocks(corpus: Path, tokenizer_dir: Path) -> None:
    block = 64
    ds = packed_dataset(
        corpus, PackConfig(tokenizer=str(tokenizer_dir), block_size=block, documents_per_batch=16)
    )
    real = 0
    for batch in ds.iter_torch_batches(batch_size=8):
        assert batch["input_ids"].shape[1] == block and batch["input_ids"].shape == batch["labels"].shape
        mask = batch["attention_mask"] == 1
        assert (batch["labels"][~mask] == -100).all() and (
            batch["labels"][mask] == batch["input_ids"][mask]
        ).all()
        real += int(mask.sum())
    tok = load_tokenizer(tokenizer_dir)
    train = [r["text"] for r in shard_rows(corpus) if r["split"] == "train"]
    assert real == sum(len(ids) + 1 for ids in tok(train)["input_ids"])  # each document + its EOS


@pytest.mark.parametrize("longest_share", [1.0, 0.5])
def test_whole_document_packing_never_cuts_a_career_that_fits(
    corpus: Path, tokenizer_dir: Path, longest_share: float
) -> None:
    """``whole_documents``: the same tokens in the same order, but a document that fits a block sits in one."""
    tok = load_tokenizer(tokenizer_dir)
    texts = [r["text"] for r in shard_rows(corpus) if r["split"] == "train"]
    sizes = np.array([len(ids) + 1 for ids in tok(texts)["input_ids"]])  # with EOS
    block = int(sizes.max() * longest_share) + 3  # 0.5: the longer documents must still continue
    whole = pack_texts(texts, tok, block, whole_documents=True)
    stream = pack_texts(texts, tok, block)
    mask = whole["attention_mask"] == 1
    assert (whole["input_ids"][mask] == stream["input_ids"][stream["attention_mask"] == 1]).all()
    assert (whole["labels"][~mask] == -100).all() and (
        whole["labels"][mask] == whole["input_ids"][mask]
    ).all()
    ends = np.cumsum(sizes)
    block_of = np.flatnonzero(mask.reshape(-1)) // block  # the block of every real token, in order
    first, last = block_of[ends - sizes], block_of[ends - 1]
    fits = sizes <= block
    assert (first[fits] == last[fits]).all()
    assert (~fits).any() == (longest_share < 1.0) and (first[~fits] < last[~fits]).all()
    # padding only where the next document did not fit: never more than that document needs
    pad = (~mask).sum(axis=1)[first[1:][first[1:] > last[:-1]] - 1]
    assert (pad < sizes[1:][first[1:] > last[:-1]]).all()
    assert len(whole["input_ids"]) > len(stream["input_ids"])


def test_synthetic_presets_mix_into_one_corpus(tmp_path: Path) -> None:
    synthetic = pytest.importorskip("laborlm.synthetic")
    from laborlm.config import apply_overrides, build, to_dict

    inputs = []
    for preset in ("psid", "resumes"):
        base = synthetic.load_preset(preset)
        config = build(type(base), apply_overrides(type(base), to_dict(base), ["people=30"]))
        summary = synthetic.generate_panel(config, tmp_path / preset)
        inputs.append((tmp_path / preset, summary))
    manifest = build_corpus(
        CorpusConfig(inputs=tuple(p for p, _ in inputs), out_dir=tmp_path / "c"), num_workers=2
    )
    assert manifest.rows_rejected == 0
    assert [i.rows_kept for i in manifest.inputs] == [s.rows for _, s in inputs]
    assert set(manifest.people) == {"psid", "resumes"} and manifest.documents == 60
    texts = [r["text"] for r in shard_rows(tmp_path / "c")]
    assert sum(t.startswith("<A worker from the PSID dataset>") for t in texts) == 30
