"""What users read, monitored during training: the occupation perplexity of valid persons.

The whole-text token loss is a poor guide to a career model: the header and the year/education tokens are
~3/4 of a text's tokens and are learnt almost at once, so the loss looks converged while the occupation
labels, the only tokens that matter, are still far from it (issue 14: 0.39 nats/token on the whole text,
3.7 nats on the first token of each title). So at every evaluation each worker scores a fixed set of valid
persons exactly as ``laborlm evaluate`` does (``llm.scoring.LlmScorer``: every taxonomy label after every
prompt) and the phase selects its best model, and stops early, on that figure.

Metrics (all person-years of the first ``occupation_eval_people`` valid persons of the corpus, the first year
of each career included, as the harness counts them):

* ``valid/occupation_perplexity``: ``exp(-mean log p_norm(y))``, renormalised over the K labels (the
  harness's perplexity, comparable with CAREER and the baselines);
* ``valid/occupation_perplexity_raw``: ``exp(-mean log p_raw(y))``, the paper's reading;
* ``valid/outside_mass``: mean probability put on strings that are not a valid label;
* ``valid/label_token_loss``: ``-sum log p_raw(y) / sum len(label tokens of y)``: the loss per label token,
  the title-token counterpart of the whole-text ``valid/loss``.

Persons are split over the ranks (``rank::world``) and the sums all-reduced, except under ZeRO-3, where a
forward pass gathers parameters collectively: there every rank scores every person, in the same order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from laborlm import schema
from laborlm.errors import LaborLMError
from laborlm.tracking import metric_names as mn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OccupationEvalSpec:
    """Which valid persons a phase scores at each evaluation (shipped to the workers in ``PhaseJob``)."""

    corpus: str  # a built corpus folder (its template.yaml and taxonomy.csv say how labels are written)
    people: int  # the first N persons of its valid split, in shard order


def read_valid_people(corpus: str | Path, people: int) -> pa.Table:
    """The first ``people`` rendered careers (text, spans, targets, ...) of a corpus's valid split."""
    from laborlm.corpus.build import corpus_files

    tables = []
    left = people
    for path in corpus_files(corpus):
        table = pq.read_table(path)
        table = table.filter(pc.equal(table.column(schema.SPLIT), "valid"))
        tables.append(table.slice(0, left))
        left -= min(left, table.num_rows)
        if left == 0:
            break
    return pa.concat_tables(tables) if tables else pa.table({})


class OccupationEvaluator:
    """Scores the spec's valid persons with the model being trained; see the module docstring."""

    def __init__(
        self,
        spec: OccupationEvalSpec,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        rank: int,
        world: int,
        partitioned: bool,
    ) -> None:
        from laborlm.corpus.manifest import TAXONOMY_FILE, TEMPLATE_FILE
        from laborlm.corpus.template import load_template
        from laborlm.llm.scoring import LlmScorer
        from laborlm.occupations.taxonomy import Taxonomy

        corpus = Path(spec.corpus)
        taxonomy = Taxonomy.from_csv(corpus / TAXONOMY_FILE)
        template = load_template(corpus / TEMPLATE_FILE)
        self.scorer = LlmScorer(model, tokenizer, template, taxonomy)  # type: ignore[arg-type]
        careers = self.scorer.encode_rendered(read_valid_people(corpus, spec.people))
        if not careers:
            raise LaborLMError(f"{corpus}: no valid person to score occupation perplexity on")
        self.total_people = len(careers)
        self.careers = careers if partitioned else careers[rank::world]
        self.label_tokens = np.array([len(ids) for ids in self.scorer.label_ids], np.float64)  # [K]
        self.partitioned = partitioned

    def evaluate(self, all_reduce: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """The four ``valid/`` occupation metrics over every rank's persons (a collective)."""
        from laborlm.llm.scoring import normalize, outside_mass

        sums = torch.zeros(5, dtype=torch.float64)
        if self.careers:
            raw = self.scorer.score(self.careers)  # [n, K] log p_raw
            targets = np.concatenate([c.targets for c in self.careers])
            rows = np.arange(len(targets))
            sums += torch.tensor(
                [
                    -normalize(raw)[rows, targets].sum(),  # renormalised NLL
                    -raw[rows, targets].sum(),  # raw NLL
                    outside_mass(raw).sum(),
                    len(targets),
                    self.label_tokens[targets].sum(),
                ],
                dtype=torch.float64,
            )
        if not self.partitioned:
            sums = all_reduce(sums)
        norm, raw_nll, outside, n, tokens = (float(v) for v in sums)
        if n == 0:
            return {}
        return {
            mn.VALID_OCCUPATION_PERPLEXITY: math.exp(min(norm / n, 700.0)),
            mn.VALID_OCCUPATION_PERPLEXITY_RAW: math.exp(min(raw_nll / n, 700.0)),
            mn.VALID_OUTSIDE_MASS: outside / n,
            mn.VALID_LABEL_TOKEN_LOSS: raw_nll / max(tokens, 1.0),
        }
