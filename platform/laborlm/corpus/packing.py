"""Tokenize-and-pack as a streaming Ray Data stage: corpus texts -> fixed-length causal-LM blocks.

Each document is tokenized with the tokenizer's own special tokens (BOS first, for ours and Llama's),
followed by EOS, and the documents of a batch are concatenated and cut into ``block_size`` blocks, as HF's
``run_clm`` groups texts. A document may continue into the next block, where its later years are trained
without the history before them; ``whole_documents`` moves a document that fits a block but not the rest of
the current one to the next block instead (padding the rest). Attention is not masked at document
boundaries (the EOS/BOS pair tells the model a new career starts). The last block of each batch is padded:
``attention_mask`` is 0 and ``labels`` are -100 there, so padding never counts in the loss, and
``documents_per_batch`` large enough keeps that waste below one block per batch.

Labels equal ``input_ids`` elsewhere (HF causal LMs shift them internally): the loss covers every real
token, the full-sequence objective of labor_llm_spec.md §6.1. Nothing is materialised on the driver: Ray
Train workers read their shard with ``get_dataset_shard("train").iter_torch_batches(batch_size=...)``.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from laborlm.corpus.build import corpus_files, iter_texts, task_dataset
from laborlm.corpus.tokenizer import cached_tokenizer
from laborlm.errors import ConfigError
from laborlm.schema import SPLITS

if TYPE_CHECKING:
    import ray.data
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # HF's ignore index for labels


@dataclass(frozen=True)
class PackConfig:
    tokenizer: str  # local tokenizer folder (laborlm corpus tokenizer) or a cached HF model id
    block_size: int = 512  # tokens per training example; a 40-year career is about 600 tokens with titles
    documents_per_batch: int = 512  # documents tokenized and packed together; one padded block per batch
    fraction: float = 1.0  # share of the split's people used (nested subsets: see corpus.build.iter_texts)
    whole_documents: bool = False  # no document shorter than a block is cut across two (pack_texts)

    def __post_init__(self) -> None:
        problems = []
        if self.block_size < 2:
            problems.append(f"block_size: must be >= 2, got {self.block_size}")
        if self.documents_per_batch < 1:
            problems.append(f"documents_per_batch: must be >= 1, got {self.documents_per_batch}")
        if not 0.0 < self.fraction <= 1.0:
            problems.append(f"fraction: must be in (0, 1], got {self.fraction}")
        if problems:
            raise ConfigError(problems)


def packed_dataset(corpus_dir: str | Path, config: PackConfig, *, split: str = "train") -> ray.data.Dataset:
    """A lazy Ray Dataset of packed blocks from one split of a built corpus.

    Columns, each ``[block_size]`` int64 per row: ``input_ids``, ``attention_mask`` (0 on padding) and
    ``labels`` (``input_ids`` with -100 on padding). One task per corpus shard streams it in batches of
    ``documents_per_batch`` documents, so no shard is ever held whole, on a worker or on the driver.

    Raises:
        ConfigError: unknown split or tokenizer. LaborLMError: the corpus is not built.
    """
    if split not in SPLITS:
        raise ConfigError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    cached_tokenizer(config.tokenizer)  # fail here, on the driver, rather than in every worker
    files = [{"path": str(f)} for f in corpus_files(corpus_dir)]
    # One task per shard (not ray.data.read_parquet: its metadata and size sampling cost seconds per call).
    return task_dataset(files).map_batches(
        functools.partial(_pack_files, config=config, split=split), batch_size=1, batch_format="numpy"
    )


def pack_texts(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    *,
    whole_documents: bool = False,
) -> dict[str, np.ndarray]:
    """Tokenize documents and pack them, each followed by EOS, into blocks (``[n_blocks, block_size]``).

    ``whole_documents``: a document that fits in a block but not in the rest of the current one starts the
    next block (the rest is padding), so every career is trained with its whole history, as it is scored;
    only a document longer than ``block_size`` still continues into the next block.
    """
    empty = np.zeros((0, block_size), dtype=np.int64)
    if not texts:
        return {"input_ids": empty, "attention_mask": empty, "labels": empty}
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    docs: list[list[int]] = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))  # [docs]
    flat = np.fromiter(itertools.chain.from_iterable(docs), dtype=np.int64, count=int(lengths.sum()))
    stream = np.insert(flat, np.cumsum(lengths), eos)  # EOS after every document
    sizes = lengths + 1  # with its EOS
    starts = _document_starts(sizes, block_size) if whole_documents else np.cumsum(sizes) - sizes
    end = int(starts[-1] + sizes[-1])
    n_blocks = -(-end // block_size)
    # position in the blocks of every token of ``stream``: its document's start plus its offset in it
    where = np.repeat(starts, sizes) + np.arange(len(stream)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    input_ids = np.full(n_blocks * block_size, pad, dtype=np.int64)
    input_ids[where] = stream
    mask = np.zeros(n_blocks * block_size, dtype=np.int64)
    mask[where] = 1
    labels = np.where(mask == 1, input_ids, IGNORE_INDEX)
    shape = (n_blocks, block_size)
    return {
        "input_ids": input_ids.reshape(shape),
        "attention_mask": mask.reshape(shape),
        "labels": labels.reshape(shape),
    }


def _document_starts(sizes: np.ndarray, block_size: int) -> np.ndarray:
    """Greedy in order: each document's first position, moved to the next block when it would straddle one."""
    starts = np.empty(len(sizes), dtype=np.int64)
    pos = 0
    for i, size in enumerate(sizes.tolist()):
        room = block_size - pos % block_size
        if room < size <= block_size:
            pos += room
        starts[i] = pos
        pos += size
    return starts


def _pack_files(
    batch: dict[str, np.ndarray], config: PackConfig, split: str
) -> Iterator[dict[str, np.ndarray]]:
    tokenizer = cached_tokenizer(config.tokenizer)
    for texts in iter_texts(
        [Path(p) for p in batch["path"]], split, config.documents_per_batch, config.fraction
    ):
        yield pack_texts(texts, tokenizer, config.block_size, whole_documents=config.whole_documents)
