"""Career panels -> resume-like text corpora (LABOR-LLM), tokenizers and packed training blocks.

    laborlm corpus build --input runs/psid --input runs/resumes --out runs/corpus --template labor-llm

``template`` (specs as data), ``render`` (pure text + label spans), ``build`` (the Ray Data pipeline),
``manifest`` (idempotent re-runs), ``tokenizer`` (train/load, label token spans) and ``packing`` (the
tokenize-and-pack Ray Data stage). Importing this package imports neither Ray nor transformers.
"""

from __future__ import annotations

from laborlm.corpus.build import CorpusConfig, build_corpus, corpus_files
from laborlm.corpus.manifest import CorpusManifest, read_manifest
from laborlm.corpus.packing import PackConfig, packed_dataset
from laborlm.corpus.render import CORPUS_SCHEMA, RenderedCareer, render, render_table, render_with_spans
from laborlm.corpus.template import Template, available_templates, load_template
from laborlm.corpus.tokenizer import TokenizerConfig, TokenSpans, load_tokenizer, token_spans, train_tokenizer

__all__ = [
    "CORPUS_SCHEMA",
    "CorpusConfig",
    "CorpusManifest",
    "PackConfig",
    "RenderedCareer",
    "Template",
    "TokenSpans",
    "TokenizerConfig",
    "available_templates",
    "build_corpus",
    "corpus_files",
    "load_template",
    "load_tokenizer",
    "packed_dataset",
    "read_manifest",
    "render",
    "render_table",
    "render_with_spans",
    "token_spans",
    "train_tokenizer",
]
