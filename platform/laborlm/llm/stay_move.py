"""Stay or move, trained jointly with the language model: one stay token that competes with the other labels.

CAREER's strongest idea is two-stage prediction: first whether a worker stays in last year's occupation, then,
if not, which other one. A plain language model must instead learn to *copy* last year's label token through
attention, which a small model does slowly: on the quickstart it put too little on staying (consecutive-repeat
perplexity 2.56 against CAREER's 1.48), and stays are ~2/3 of person-years. A stay/move head on frozen hidden
states helped no more than on a random network (issue 14), so the mechanism is trained with the LM here.

**How.** The tokenizer gets one special token, :data:`STAY_TOKEN`, that never occurs in text. At every
occupation label of a career after its first, the model's next-token softmax is taken with last year's label
token masked out, and the training target is the stay token when the worker stayed, the new label otherwise::

    p(stay)        = softmax(z with z[prev] = -inf)[stay]
    p(j), j != prev = softmax(z with z[prev] = -inf)[j]

which is two-stage prediction (``p(stay) * 1`` vs ``(1 - p(stay)) * p(j | move)``) in one softmax, so the
model stays a plain causal LM: saved, loaded, resized, sharded (ZeRO), LoRA-wrapped and exported as any
other. The first label of each career, and every other token, keep the ordinary next-token loss. Scoring
(:func:`two_stage_log_probs`, used by ``llm.scoring.LlmScorer``) reads the same masked softmax: the
occupation ``prev`` gets the stay token's probability. Labels must be single tokens (``label_tokens``).

Measured (docs/language-models.md): the quickstart's fine-tuned tiny LM went from test perplexity 15.86 to
11.09 (CAREER-small two-stage 10.32), consecutive repeats from 2.56 to 1.49. On the NLS Young Women panel
(13 groups, 73% stays) it does worse, 2.97 against 2.84: without copy training, returns to an earlier
group (A, B, A) are predicted worse; ``stay_move: false`` trains the plain LM
(docs/nls-walkthrough.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from laborlm.corpus.tokenizer import STAY as STAY_TOKEN

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # HF's ignore index for labels


def stay_token_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The stay token's id, or None: a tokenizer without one makes a plain language model."""
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    if STAY_TOKEN not in vocab:
        return None
    return int(vocab[STAY_TOKEN])


def previous_labels(ids: torch.Tensor, label_of: torch.Tensor, boundaries: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` label index of the last label token at or before each position of the same document, else -1.

    Args:
        ids: ``[B, T]`` token ids (``IGNORE_INDEX`` allowed: neither a label nor a boundary).
        label_of: ``[V]`` label index of each token id, -1 for tokens that are not labels.
        boundaries: ids that start or end a document (BOS, EOS): no label is carried across them.
    """
    safe = ids.clamp(min=0)
    label = torch.where(ids >= 0, label_of.to(ids.device)[safe], torch.full_like(ids, -1))
    position = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    last = torch.where(label >= 0, position, torch.full_like(position, -1)).cummax(dim=1).values
    document = torch.isin(ids, boundaries.to(ids.device)).long().cumsum(dim=1)
    at = last.clamp(min=0)
    same = document.gather(1, at) == document
    return torch.where((last >= 0) & same, label.gather(1, at), torch.full_like(label, -1))


class StayMoveLoss:
    """The causal-LM loss with stay/move targets (module docstring); installed as a model's ``loss_function``.

    Called by HF causal LMs as ``loss_function(logits=..., labels=..., vocab_size=..., **kwargs)`` with
    unshifted labels, like ``transformers``' own ``ForCausalLMLoss``; honours ``num_items_in_batch``
    (gradient accumulation) and ``ignore_index``.
    """

    def __init__(
        self, label_token_ids: Sequence[int], stay_id: int, boundary_ids: Sequence[int], vocab_size: int
    ) -> None:
        self.label_token_ids = torch.tensor(list(label_token_ids), dtype=torch.long)  # [K]
        self.label_of = torch.full((vocab_size,), -1, dtype=torch.long)
        self.label_of[self.label_token_ids] = torch.arange(len(self.label_token_ids))
        self.stay_id = int(stay_id)
        self.boundaries = torch.tensor(sorted(set(boundary_ids)), dtype=torch.long)

    def __call__(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        vocab_size: int | None = None,
        num_items_in_batch: Any = None,
        ignore_index: int = IGNORE_INDEX,
        **_: Any,
    ) -> torch.Tensor:
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        logits = logits[:, :-1]  # [B, T-1, V]: position t predicts labels[:, t + 1]
        prev = previous_labels(labels, self.label_of, self.boundaries)[:, :-1]  # last label up to t
        target = labels[:, 1:]
        target_label = torch.where(target >= 0, self.label_of.to(target.device)[target.clamp(min=0)], -1)
        scored = (target_label >= 0) & (prev >= 0)  # a label after an earlier label of the same career
        prev_token = self.label_token_ids.to(target.device)[prev.clamp(min=0)]
        target = torch.where(scored & (target_label == prev), torch.full_like(target, self.stay_id), target)
        mask = torch.zeros_like(logits, dtype=torch.bool)
        mask.scatter_(-1, prev_token.unsqueeze(-1), scored.unsqueeze(-1))
        logits = logits.masked_fill(mask, float("-inf"))
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=ignore_index,
            reduction="sum",
        )
        if num_items_in_batch is None:
            return loss / (target != ignore_index).sum().clamp(min=1)
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        out: torch.Tensor = loss / num_items_in_batch
        return out


def install(
    model: Any, tokenizer: PreTrainedTokenizerBase, label_strings: Sequence[str] | None = None
) -> bool:
    """Give ``model`` the stay/move loss if ``tokenizer`` has the stay token; returns whether it did.

    The label tokens are the tokenizer's added tokens of the form ``" {label}\\n"`` (``label_strings``
    overrides that reading).
    """
    stay = stay_token_id(tokenizer)
    if stay is None:
        return False
    strings = label_strings if label_strings is not None else label_token_strings(tokenizer)
    vocab = tokenizer.get_vocab()
    ids = [int(vocab[s]) for s in strings]
    boundaries = [i for i in (tokenizer.bos_token_id, tokenizer.eos_token_id) if i is not None]
    rows = int(model.get_output_embeddings().weight.shape[0])
    model.loss_function = StayMoveLoss(ids, stay, boundaries, max(rows, len(tokenizer)))
    return True


def label_token_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The added tokens that are scored label strings (a space, a label, the line end)."""
    from laborlm.corpus.template import LINE_END, OCCUPATION_SEPARATOR

    return sorted(
        s
        for s in tokenizer.get_added_vocab()
        if s.startswith(OCCUPATION_SEPARATOR) and s.endswith(LINE_END) and len(s) > 2
    )


def two_stage_log_probs(raw: np.ndarray, raw_stay: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Label log-probabilities read as the stay/move softmax was trained (module docstring).

    Args:
        raw: ``[n, K]`` log p of each label token under the full softmax.
        raw_stay: ``[n]`` log p of the stay token under the same softmax.
        prev: ``[n]`` last year's label index, -1 for a career's first year (left as it is).

    Returns:
        ``[n, K]``: for rows with a previous label, the softmax renormalised without ``prev``'s own token,
        with ``prev``'s column set to the stay token's probability.
    """
    out = np.array(raw, dtype=np.float64, copy=True)
    rows = np.flatnonzero(prev >= 0)
    if rows.size == 0:
        return out
    cols = prev[rows]
    p_prev = np.exp(out[rows, cols])
    # log(1 - p(prev)); the masked softmax excludes prev's own token. Floor: a model that puts all its mass
    # on copying prev's token (never trained to) must not divide by zero.
    log_rest = np.log1p(-np.minimum(p_prev, 1.0 - 1e-12))
    out[rows] -= log_rest[:, None]
    out[rows, cols] = np.asarray(raw_stay, np.float64)[rows] - log_rest
    return out


def previous_targets(targets: Sequence[np.ndarray]) -> np.ndarray:
    """Per career's ``[T]`` label indices, each year's previous label (-1 for the first year), concatenated."""
    parts = [
        np.concatenate([[-1], np.asarray(t, np.int64)[:-1]]) if len(t) else np.zeros(0, np.int64)
        for t in targets
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
