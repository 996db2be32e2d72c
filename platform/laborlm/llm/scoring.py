"""Next-occupation probabilities from a causal language model: every taxonomy label, every person-year, fast.

    scorer = LlmScorer(model, tokenizer, load_template("labor-llm"), taxonomy)
    scores = scorer.score_panel(test_panel)          # LlmScores: raw [n, K] log p, targets
    scores.summary()                                  # paper's perplexity, renormalised one, leaked mass

LABOR-LLM (labor_llm_spec.md §5.2) reads ``p(occupation j | career so far)`` off the token probabilities of
the scored string ``s_j = " " + label_j + "\\n"`` after the year's prompt (``corpus.render``: the text up to
and including ``"{year} ({education}):"``)::

    log p_raw(j | c)  = sum_k log p(w_{j,k} | c, w_{j,<k})       (chain rule, terminator included)
    p_norm(j | c)     = p_raw(j | c) / sum_{j'} p_raw(j' | c)     (a proper distribution over the K labels)

Both are reported, with the mass ``1 - sum_j p_raw(j | c)`` that the model puts on strings that are not a
valid label. The terminator makes the K scored strings prefix-free, so that mass is never negative.

**How it is fast.** Scoring K ~ 345 labels per person-year naively means K forward passes over the whole
prompt. Instead (``LlmScorer.score``):

1. *One pass per person over the text.* The prompts of all years are prefixes of the one career text, and
   a causal model's keys/values at a position never depend on later tokens. So one forward pass over the
   text (up to the last year's prompt) yields every year's prefix cache and first-token distribution.
   People are batched in this pass (right padding is invisible to a causal model).
2. *All labels at once over a token trie* (``llm.trie``): for each person-year, the internal trie nodes are
   fed as one sequence on top of that year's cached prefix, with a 4-D tree attention mask (a node sees the
   prefix and its own ancestors) and position ids ``prompt_end + depth - 1``. The cache of the whole text is
   shared by the person-years of a batch; each year's mask hides the cache positions after its prompt.
   Labels sharing a prefix share its computation; the final ``"\\n"`` of every label is never fed at all.

:meth:`LlmScorer.score_naive` is the reference: one full forward pass over ``prompt + s_j`` for every
(person-year, label). The two agree to float rounding (tests: 1e-5 in log-probability).

**Tokenization.** The scored ids must be the ids the model saw in training, where prompt and label were
one text. The prompt's ids are cut from the tokenization of the whole text at the token boundary
``corpus.token_spans`` finds (it refuses a tokenizer whose tokens straddle it), and each label's ids are
the tokenization of ``s_j`` alone. :func:`check_boundaries` verifies once, for all K labels in a rendered
context, that tokenizing ``prompt + s_j + rest`` gives exactly ``prompt ids + label ids + ...``; scoring
also checks, for every person-year, that the label ids of the true occupation equal the text's own ids.
Byte-level BPE with ``trim_offsets=False`` (``corpus.train_tokenizer``) passes; so does Llama's
SentencePiece where labels start with "▁".

Models: any decoder-only HF model whose forward takes a custom 4-D additive attention mask, explicit
``position_ids`` and a ``DynamicCache`` (Llama, Mistral, Qwen2, ...). Log-softmax is always taken in float64.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import torch

from laborlm import schema
from laborlm.corpus.render import render_table, render_with_spans
from laborlm.corpus.template import LINE_END, OCCUPATION_SEPARATOR, Template
from laborlm.corpus.tokenizer import token_spans
from laborlm.errors import ConfigError, LaborLMError
from laborlm.llm.stay_move import previous_targets, stay_token_id, two_stage_log_probs
from laborlm.llm.trie import CandidateTrie, build_groups
from laborlm.occupations.taxonomy import Taxonomy

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# Metric keys (to move into tracking/metric_names.py with the benchmark command).
TEST_PERPLEXITY_RAW = "test/perplexity_raw"  # the paper's: exp(-mean log p_raw(y)), not renormalised
TEST_PERPLEXITY_NORMALIZED = "test/perplexity_normalized"  # renormalised over the K valid labels
TEST_OUTSIDE_MASS = "test/outside_mass"  # mean of 1 - sum_j p_raw(j | c): mass on invalid strings

_LSE_ELEMENTS = 1 << 24  # float64 elements converted at once when taking log-softmax over the vocabulary


@dataclass(frozen=True)
class ScoringConfig:
    """Batch sizes of the fast scorer; none of them changes a result beyond float rounding."""

    max_tree_nodes: int = 128  # internal trie nodes per pass (smaller: less attention; CPU optimum here)
    max_query_tokens: int = 8192  # person-years x trie nodes fed per tree pass
    max_prefix_tokens: int = 16384  # padded text tokens per first pass (people batched together)
    naive_batch_size: int = 64  # label sequences per forward pass of the naive reference scorer
    check_boundaries: bool = True  # verify at start-up that every label tokenizes the same in context

    def __post_init__(self) -> None:
        bad = [
            f"{k}: must be >= 1, got {v}"
            for k, v in vars(self).items()
            if isinstance(v, int) and not isinstance(v, bool) and v < 1
        ]
        if bad:
            raise ConfigError(bad)


@dataclass(frozen=True)
class EncodedCareer:
    """One career's token ids and, per year, where its prompt ends (the first token of the scored string)."""

    input_ids: np.ndarray  # [L] int64, BOS included
    prompt_ends: np.ndarray  # [T] int64 token index of each year's scored string; its prompt is ids[:end]
    targets: np.ndarray  # [T] int64 taxonomy index of each year's occupation


@dataclass(frozen=True)
class ScoreSummary:
    person_years: int
    perplexity_raw: (
        float  # exp(-mean log p_raw(y)): LABOR-LLM's number, mass outside the labels counts as loss
    )
    perplexity_normalized: float  # exp(-mean log p_norm(y)): <= perplexity_raw
    outside_mass: float  # mean over person-years of 1 - sum_j p_raw(j)

    def as_metrics(self) -> dict[str, float]:
        return {
            TEST_PERPLEXITY_RAW: self.perplexity_raw,
            TEST_PERPLEXITY_NORMALIZED: self.perplexity_normalized,
            TEST_OUTSIDE_MASS: self.outside_mass,
        }


@dataclass(frozen=True)
class LlmScores:
    """Raw label log-probabilities of person-years, rows in panel order."""

    raw: np.ndarray  # [n, K] float64 log p_raw(label k | prompt)
    targets: np.ndarray  # [n] int64 taxonomy index of the observed occupation

    @property
    def normalized(self) -> np.ndarray:
        """``[n, K]`` log p_norm: the raw scores renormalised over the K valid labels."""
        return normalize(self.raw)

    @property
    def outside_mass(self) -> np.ndarray:
        """``[n]`` probability the model puts outside the valid labels, in [0, 1]."""
        return outside_mass(self.raw)

    def summary(self) -> ScoreSummary:
        n = len(self.targets)
        rows = np.arange(n)
        raw_nll = -float(self.raw[rows, self.targets].mean()) if n else math.nan
        norm_nll = -float(self.normalized[rows, self.targets].mean()) if n else math.nan
        return ScoreSummary(
            n, math.exp(raw_nll), math.exp(norm_nll), float(self.outside_mass.mean()) if n else math.nan
        )


def normalize(raw: np.ndarray) -> np.ndarray:
    """Renormalise raw log-probabilities over the last axis (the K labels)."""
    top = raw.max(axis=-1, keepdims=True)
    out: np.ndarray = raw - (top + np.log(np.exp(raw - top).sum(axis=-1, keepdims=True)))
    return out


def outside_mass(raw: np.ndarray) -> np.ndarray:
    """``1 - sum_k exp(raw_k)`` along the last axis, clipped to [0, 1] against rounding."""
    top = raw.max(axis=-1)
    lse = top + np.log(np.exp(raw - top[..., None]).sum(axis=-1))
    out: np.ndarray = np.clip(-np.expm1(np.minimum(lse, 0.0)), 0.0, 1.0)
    return out


def candidate_token_ids(
    tokenizer: PreTrainedTokenizerBase, labels: Sequence[str]
) -> tuple[tuple[int, ...], ...]:
    """The ids of each scored string ``" " + label + "\\n"``, tokenized alone (no special tokens)."""
    strings = [OCCUPATION_SEPARATOR + label + LINE_END for label in labels]
    ids = tokenizer(strings, add_special_tokens=False)["input_ids"]
    return tuple(tuple(int(i) for i in row) for row in ids)


def check_boundaries(
    tokenizer: PreTrainedTokenizerBase,
    template: Template,
    taxonomy: Taxonomy,
    label_ids: Sequence[Sequence[int]],
) -> None:
    """Verify that every label, written into a real career text, tokenizes as prompt ids + its own ids.

    A two-year career is rendered with the template; for each label ``j`` the second year's label is
    replaced by ``label_j`` and the whole text tokenized. Its ids must start with the ids of the untouched
    prompt, followed by ``label_ids[j]``; otherwise scoring ``prompt + label`` piecewise would score ids the
    model never sees in a text.

    Raises:
        LaborLMError: the first label for which that fails, with both tokenizations.
    """
    code = taxonomy.codes[0]
    career = schema.Career(
        "probe",
        "psid",
        np.array([2000, 2001]),
        (code, code),
        ("bachelors", "bachelors"),
        np.array([np.nan, np.nan]),
        region="south",
        gender="female",
        race="white",
        birth_year=1970,
    )
    rendered = render_with_spans(career, taxonomy, template)
    prompt = rendered.prompt(1)
    rest = rendered.text[rendered.spans[1][1] + len(LINE_END) :]
    encoded = token_spans(rendered.text, rendered.spans, tokenizer)
    prompt_ids = encoded.input_ids[: encoded.spans[1][0]]
    labels = template.occupation_labels(taxonomy)
    texts = [prompt + OCCUPATION_SEPARATOR + label + LINE_END + rest for label in labels]
    for j, ids in enumerate(tokenizer(texts)["input_ids"]):
        expected = list(prompt_ids) + list(label_ids[j])
        if list(ids[: len(expected)]) != expected:
            raise LaborLMError(
                f"label {labels[j]!r} tokenizes differently inside a career text "
                f"({ids[len(prompt_ids) : len(expected)]}) "
                f"than alone ({list(label_ids[j])}); its token probabilities cannot be read off piecewise"
            )


class LlmScorer:
    """Scores every taxonomy label after every prompt of a career with a causal LM (module docstring).

    The model is used as given (device, dtype, weights); it is put in eval mode for each call.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        template: Template,
        taxonomy: Taxonomy,
        config: ScoringConfig | None = None,
    ) -> None:
        if not tokenizer.is_fast:
            raise ConfigError("LlmScorer needs a fast tokenizer (offset mappings)")
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.taxonomy = taxonomy
        self.config = config = config or ScoringConfig()
        self.labels = template.occupation_labels(taxonomy)
        self.label_ids = candidate_token_ids(tokenizer, self.labels)
        if config.check_boundaries:
            check_boundaries(tokenizer, template, taxonomy, self.label_ids)
        self.groups: tuple[CandidateTrie, ...] = build_groups(self.label_ids, config.max_tree_nodes)
        self.stay_id = stay_token_id(tokenizer)  # a stay/move model (llm.stay_move): its stay token
        if self.stay_id is not None and any(len(ids) != 1 for ids in self.label_ids):
            raise LaborLMError(
                "the tokenizer has the stay token of two-stage training, but some labels are not "
                "single tokens: the model was trained on another taxonomy or template"
            )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        logger.debug(
            "scorer: K=%d labels, %d label tokens, %d trie nodes (%d fed) in %d group(s)",
            len(self.labels),
            sum(map(len, self.label_ids)),
            sum(g.n_nodes for g in self.groups),
            sum(g.n_query for g in self.groups),
            len(self.groups),
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- inputs ---------------------------------------------------------------------------------------

    def encode(self, text: str, spans: Sequence[tuple[int, int]], targets: Sequence[str]) -> EncodedCareer:
        """Token ids of a rendered career and each year's prompt end.

        Raises:
            LaborLMError: a token straddles a label boundary, or the text's ids of a true label differ from
                that label's ids tokenized alone (the scored ids would not be the ones seen in training).
        """
        encoded = token_spans(text, spans, self.tokenizer)
        index = self.taxonomy.indices(list(targets))
        ids = np.asarray(encoded.input_ids, dtype=np.int64)
        for (lo, hi), k in zip(encoded.spans, index, strict=True):
            if k < 0:
                raise LaborLMError(
                    f"occupation {targets[0]!r} is not a code of taxonomy '{self.taxonomy.name}'"
                )
            if tuple(ids[lo:hi]) != self.label_ids[k]:
                raise LaborLMError(
                    f"label {self.labels[k]!r}: ids in the text {ids[lo:hi].tolist()} differ from its ids "
                    f"alone {list(self.label_ids[k])}"
                )
        return EncodedCareer(
            ids, np.array([s for s, _ in encoded.spans], dtype=np.int64), np.asarray(index, np.int64)
        )

    def encode_panel(self, panel: pa.Table) -> list[EncodedCareer]:
        """Every career of a canonical panel (sorted by person, year), in panel order."""
        rendered = render_table(panel, self.taxonomy, self.template)
        return self.encode_rendered(rendered)

    def encode_rendered(self, rendered: pa.Table) -> list[EncodedCareer]:
        """Rows of a rendered corpus table (``corpus.CORPUS_SCHEMA``: text, spans, targets)."""
        texts = rendered.column("text").to_pylist()
        spans = rendered.column("spans").to_pylist()
        targets = rendered.column("targets").to_pylist()
        return [
            self.encode(text, [(s["start"], s["end"]) for s in sp], tg)
            for text, sp, tg in zip(texts, spans, targets, strict=True)
        ]

    # --- scoring --------------------------------------------------------------------------------------

    def score_panel(self, panel: pa.Table, method: str = "fast") -> LlmScores:
        """Raw log-probabilities of every label for every row of a canonical panel (method: fast|naive)."""
        return self.score_encoded(self.encode_panel(panel), method)

    def score_encoded(self, careers: Sequence[EncodedCareer], method: str = "fast") -> LlmScores:
        if method not in ("fast", "naive"):
            raise ConfigError(f"method: expected fast or naive, got {method!r}")
        fn = self.score if method == "fast" else self.score_naive
        raw = [fn(batch) for batch in self._person_batches(careers)]
        k = len(self.labels)
        return LlmScores(
            np.concatenate(raw) if raw else np.zeros((0, k)),
            np.concatenate([c.targets for c in careers]) if careers else np.zeros(0, np.int64),
        )

    def hidden_states(self, careers: Sequence[EncodedCareer]) -> np.ndarray:
        """``[n, D]`` float32: the last hidden state at each year's prediction point (its prompt's last
        token),
        what the model's next-token distribution for the label is computed from; rows in career order."""
        out = []
        for batch in self._person_batches(careers):
            with self._inference():
                _, _, hidden = self._prefix_pass(batch, want_hidden=True)
            assert hidden is not None
            out.append(hidden.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, int(self.model.config.hidden_size)), np.float32)

    def score(self, careers: Sequence[EncodedCareer]) -> np.ndarray:
        """``[sum T, K]`` float64 raw log p of every label after every prompt: the fast method."""
        if not careers:
            return np.zeros((0, len(self.labels)))
        with self._inference():
            prefix_logits, cache, _ = self._prefix_pass(careers, want_hidden=False)
            person = np.concatenate([np.full(len(c.prompt_ends), i) for i, c in enumerate(careers)])
            ends = np.concatenate([c.prompt_ends for c in careers])
            out = torch.empty((len(ends), len(self.labels)), dtype=torch.float64)
            for trie in self.groups:
                per_pass = max(1, self.config.max_query_tokens // max(trie.n_query, 1))
                for lo in range(0, len(ends), per_pass):
                    rows = slice(lo, lo + per_pass)
                    raw = self._tree_pass(trie, cache, prefix_logits[rows], person[rows], ends[rows])
                    out[rows, torch.as_tensor(trie.candidates)] = raw.cpu()
            if self.stay_id is None:
                return out.numpy()
            stay = prefix_logits[:, self.stay_id].double() - _logsumexp64(prefix_logits)
        return self._two_stage(out.numpy(), stay.cpu().numpy(), careers)

    def _two_stage(
        self, raw: np.ndarray, raw_stay: np.ndarray, careers: Sequence[EncodedCareer]
    ) -> np.ndarray:
        """A stay/move model's label log-probabilities: last year's label gets the stay token's (llm.stay_move)."""
        return two_stage_log_probs(raw, raw_stay, previous_targets([c.targets for c in careers]))

    def score_naive(self, careers: Sequence[EncodedCareer]) -> np.ndarray:
        """The reference: one full forward pass over ``prompt + label`` per (person-year, label), no cache.

        Label sequences of one prompt are batched (``naive_batch_size``), right-padded: padding after a
        sequence is invisible to a causal model, so every label's pass is exactly its own.
        """
        k_all = len(self.labels)
        rows = []
        stays: list[float] = []
        with self._inference():
            for career in careers:
                for end in career.prompt_ends:
                    prompt = career.input_ids[:end].tolist()
                    row = torch.empty(k_all, dtype=torch.float64)
                    for lo in range(0, k_all, self.config.naive_batch_size):
                        chunk = range(lo, min(lo + self.config.naive_batch_size, k_all))
                        row[lo : chunk.stop] = self._naive_chunk(prompt, [self.label_ids[k] for k in chunk])
                    rows.append(row)
                    if self.stay_id is not None:
                        stays.append(float(self._naive_chunk(prompt, [(self.stay_id,)])[0]))
        if not rows:
            return np.zeros((0, k_all))
        raw = torch.stack(rows).numpy()
        return raw if self.stay_id is None else self._two_stage(raw, np.array(stays), careers)

    # --- internals ------------------------------------------------------------------------------------

    def _inference(self) -> _Inference:
        return _Inference(self.model)

    def _person_batches(self, careers: Sequence[EncodedCareer]) -> Iterator[list[EncodedCareer]]:
        """Consecutive people whose padded first pass stays within ``max_prefix_tokens``."""
        batch: list[EncodedCareer] = []
        longest = 0
        for career in careers:
            length = int(career.prompt_ends.max()) if len(career.prompt_ends) else 0
            if batch and max(longest, length) * (len(batch) + 1) > self.config.max_prefix_tokens:
                yield batch
                batch, longest = [], 0
            batch.append(career)
            longest = max(longest, length)
        if batch:
            yield batch

    def _prefix_pass(
        self, careers: Sequence[EncodedCareer], want_hidden: bool
    ) -> tuple[torch.Tensor, object, torch.Tensor | None]:
        """One pass over each career's text up to its last prompt end (people right-padded into one batch).

        Returns:
            ``[sum T, V]`` logits at each year's prompt end (the first label token's distribution), the
            ``DynamicCache`` of the batch (row i = career i), and ``[sum T, D]`` last hidden states there.
        """
        lengths = [int(c.prompt_ends.max()) for c in careers]
        width = max(lengths)
        ids = torch.full((len(careers), width), self.pad_id, dtype=torch.long)
        for i, c in enumerate(careers):
            ids[i, : lengths[i]] = torch.as_tensor(c.input_ids[: lengths[i]])
        person = torch.as_tensor(
            np.concatenate([np.full(len(c.prompt_ends), i) for i, c in enumerate(careers)])
        )
        last = torch.as_tensor(np.concatenate([c.prompt_ends - 1 for c in careers]))
        keep = torch.unique(last)  # logits only where some year's prompt ends
        out = self.model(
            input_ids=ids.to(self.device),
            use_cache=True,
            output_hidden_states=want_hidden,
            logits_to_keep=keep.to(self.device),
        )
        column = torch.searchsorted(keep, last).to(self.device)
        logits = out.logits[person.to(self.device), column]
        hidden = out.hidden_states[-1][person.to(self.device), last.to(self.device)] if want_hidden else None
        return logits, out.past_key_values, hidden

    def _tree_pass(
        self,
        trie: CandidateTrie,
        cache: object,
        prefix_logits: torch.Tensor,
        person: np.ndarray,
        ends: np.ndarray,
    ) -> torch.Tensor:
        """``[B, k]`` float64 raw log p of the trie's labels for B person-years, in one forward pass."""
        from transformers import DynamicCache

        device = self.device
        b, q = len(ends), trie.n_query
        prefix = int(ends.max())
        rows = torch.as_tensor(person, device=device)
        # Each person-year reads its own person's cache; positions at or after its prompt end are masked.
        layers = [(k[rows, :, :prefix], v[rows, :, :prefix]) for k, v, *_ in cache]  # type: ignore[attr-defined]
        past = DynamicCache(layers, config=self.model.config)
        ends_t = torch.as_tensor(ends, device=device)
        query = torch.as_tensor(trie.query, device=device)
        allowed = torch.cat(
            [
                (torch.arange(prefix, device=device)[None, :] < ends_t[:, None])[:, None, :].expand(
                    b, q, prefix
                ),
                torch.as_tensor(trie.tree_mask, device=device)[None].expand(b, q, q),
            ],
            dim=-1,
        )  # [B, Q, prefix + Q]
        dtype = next(self.model.parameters()).dtype  # the attention runs in the model's dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(
            ~allowed, torch.finfo(dtype).min
        )
        query_logits = None
        if q:
            out = self.model(
                input_ids=torch.as_tensor(trie.token, device=device)[query][None].expand(b, q),
                position_ids=ends_t[:, None] + torch.as_tensor(trie.depth, device=device)[query][None] - 1,
                attention_mask=mask[:, None],
                past_key_values=past,
                use_cache=True,
            )
            query_logits = out.logits  # [B, Q, V]
        # Edge log-probabilities: a first label token is read off the prompt end, any other off its parent.
        token = torch.as_tensor(trie.token, device=device)
        first = torch.as_tensor(trie.source_row == 0, device=device)
        edge = torch.empty((b, trie.n_nodes + 1), dtype=torch.float64, device=device)
        edge[:, -1] = 0.0  # column N pads the paths
        edge[:, :-1][:, first] = (
            prefix_logits[:, token[first]].double() - _logsumexp64(prefix_logits)[:, None]
        )
        if query_logits is not None:
            parent = torch.as_tensor(trie.source_row - 1, device=device)[~first]  # query index of the parent
            lse = _logsumexp64(query_logits)  # [B, Q]
            edge[:, :-1][:, ~first] = query_logits[:, parent, token[~first]].double() - lse[:, parent]
        paths = torch.as_tensor(np.where(trie.paths < 0, trie.n_nodes, trie.paths), device=device)
        return edge[:, paths].sum(dim=-1)  # [B, k]

    def _naive_chunk(self, prompt: list[int], labels: list[tuple[int, ...]]) -> torch.Tensor:
        longest = max(map(len, labels))
        p = len(prompt)
        ids = torch.full((len(labels), p + longest), self.pad_id, dtype=torch.long)
        for i, lab in enumerate(labels):
            ids[i, : p + len(lab)] = torch.as_tensor(prompt + list(lab))
        out = self.model(input_ids=ids.to(self.device), logits_to_keep=longest + 1)
        logits = out.logits[:, :longest]  # [b, longest, V]: position p - 1 + j predicts label token j
        log_probs = torch.log_softmax(logits.double(), dim=-1)
        targets = ids[:, p:].to(self.device)
        picked = log_probs.gather(-1, targets[..., None])[..., 0]
        real = torch.as_tensor([[j < len(lab) for j in range(longest)] for lab in labels], device=self.device)
        return picked.masked_fill(~real, 0.0).sum(dim=-1).cpu()


class _Inference:
    """Eval mode and no autograd for the duration of a call; restores the model's training flag."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def _logsumexp64(x: torch.Tensor) -> torch.Tensor:
    """logsumexp over the last axis as float64, a bounded number of rows at a time.

    Exponentials are taken in the logits' precision (at least float32) after subtracting the row maximum,
    so each term is exact to ~1e-7 relative, and summed in float64: the result is within ~1e-7 of a full
    float64 computation without converting the ``[rows, V]`` logits to float64 (twice the memory traffic).
    """
    flat = x.reshape(-1, x.shape[-1])
    if flat.element_size() < 4:
        flat = flat.float()
    step = max(1, _LSE_ELEMENTS // x.shape[-1])
    out = []
    for i in range(0, len(flat), step):
        chunk = flat[i : i + step]
        top = chunk.amax(dim=-1, keepdim=True)
        total = torch.exp(chunk - top).sum(dim=-1, dtype=torch.float64)
        out.append(top[:, 0].double() + total.log())
    return torch.cat(out).reshape(x.shape[:-1])
