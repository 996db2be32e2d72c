"""Language models as next-occupation models (LABOR-LLM).

``scoring`` reads every taxonomy label's probability off a causal LM's token probabilities, fast (one pass
per person over the text, all labels over a token trie with tree attention) with a naive reference;
``model`` wraps it as a ``NextOccupationModel`` (``LlmOccupationModel``) with save/load; ``embedding`` is the
hidden-state + two-stage-head variant; ``distributed`` batches people over Ray Data actors; ``trie`` holds
the candidate trie. Importing this package imports neither Ray nor transformers.
"""

from __future__ import annotations

from laborlm.llm.embedding import EmbeddingHeadConfig, EmbeddingOccupationModel
from laborlm.llm.model import LlmOccupationModel
from laborlm.llm.scoring import LlmScorer, LlmScores, ScoreSummary, ScoringConfig

__all__ = [
    "EmbeddingHeadConfig",
    "EmbeddingOccupationModel",
    "LlmOccupationModel",
    "LlmScorer",
    "LlmScores",
    "ScoreSummary",
    "ScoringConfig",
]
