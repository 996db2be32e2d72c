"""Token spans refuse tokenizers whose tokens cross the boundary of a scored occupation string."""

from __future__ import annotations

import numpy as np
import pytest

from laborlm.corpus import load_template, render_with_spans, token_spans
from laborlm.errors import LaborLMError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import Career


def test_a_token_spanning_prompt_and_label_is_refused() -> None:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # One token per line: "1982: Cashiers" is a single token, so the label cannot be scored on its own.
    lines = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    lines.pre_tokenizer = pre_tokenizers.Split(Regex("\n"), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=lines, unk_token="[UNK]")
    career = Career("x", "psid", np.array([1982]), ("276",), (None,), np.array([np.nan]))
    rendered = render_with_spans(career, Taxonomy.default(), load_template("bare"))
    with pytest.raises(LaborLMError, match="crosses the boundary of the scored string"):
        token_spans(rendered.text, rendered.spans, tokenizer)
