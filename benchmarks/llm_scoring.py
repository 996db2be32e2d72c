"""Label-scoring throughput of a causal LM: the fast scorer against the naive one, same model, one run.

    python benchmarks/llm_scoring.py                          # small Llama (~3.6M parameters), occ1990dd
    python benchmarks/llm_scoring.py --size tiny --people 100 --naive-person-years 20

Scores every occ1990dd label (K = 345 with the special states) after every prompt of synthetic careers
rendered with the ``labor-llm`` template, and prints person-years scored per second for

* **fast** (``LlmScorer.score``): one forward pass per person over the text, then all K labels at once
  over a token trie with tree attention on top of each year's cached prefix;
* **naive** (``LlmScorer.score_naive``): one full forward pass over ``prompt + label`` for every
  (person-year, label), labels of a prompt batched ``--naive-batch`` at a time (right-padded).

and their ratio, with the largest difference between the two on the person-years both scored. The
tokenizer is a byte-level BPE (``--vocab`` tokens) trained with ``corpus.train_tokenizer`` on rendered
careers that use every occupation, as a resume corpus would; the model is a randomly initialised Llama of
``--size`` (throughput does not depend on the weights). Figures go in reports, never in tests.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from random_panels import random_panel

from laborlm.corpus.template import load_template
from laborlm.corpus.tokenizer import load_tokenizer
from laborlm.llm.scoring import LlmScorer, ScoringConfig
from laborlm.occupations import Taxonomy
from laborlm.workflows.benchmark_hardware import tokenizer_on

SIZES = {  # hidden, layers, heads, kv heads, intermediate
    "tiny": (64, 2, 4, 2, 128),
    "small": (256, 4, 8, 4, 704),
    "medium": (512, 8, 8, 4, 1408),
}


def make_panel(people: int, years: int, prefix: str, seed: int) -> pa.Table:
    """``people`` careers of ``years`` years over every occupation, tagged as PSID (the template's dataset line)."""
    return random_panel(people, years, prefix, seed, source="psid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--people", type=int, default=30, help="people scored by the fast method")
    parser.add_argument("--years", type=int, default=5, help="years per career (PSID averages 5.1)")
    parser.add_argument("--naive-person-years", type=int, default=10, help="person-years scored naively")
    parser.add_argument("--naive-batch", type=int, default=64, help="label sequences per naive forward pass")
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float64"], default="float32")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of fast and naive timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    from transformers import LlamaConfig, LlamaForCausalLM

    taxonomy, template = Taxonomy.default(), load_template("labor-llm")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_tokenizer(
            tokenizer_on(make_panel(3000, args.years, "t", 1), taxonomy, args.vocab, Path(tmp))
        )
    hidden, layers, heads, kv, inter = SIZES[args.size]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=inter,
        max_position_embeddings=2048,
    )
    model = LlamaForCausalLM(config).to(device=args.device, dtype=getattr(torch, args.dtype)).eval()
    scorer = LlmScorer(model, tokenizer, template, taxonomy, ScoringConfig(naive_batch_size=args.naive_batch))
    careers = scorer.encode_panel(make_panel(args.people, args.years, "s", 2))
    prompts = np.concatenate([c.prompt_ends for c in careers])
    label_tokens = np.array([len(ids) for ids in scorer.label_ids])
    print(
        f"llama-{args.size}: {sum(p.numel() for p in model.parameters()):,} parameters, {args.dtype} on "
        f"{args.device}, {torch.get_num_threads()} torch threads; K={len(taxonomy)} labels, "
        f"{label_tokens.mean():.1f} tokens each (max {label_tokens.max()}), trie "
        f"{sum(g.n_nodes for g in scorer.groups)} nodes of which {sum(g.n_query for g in scorer.groups)} fed "
        f"(vs {label_tokens.sum()} label tokens); prompts {prompts.mean():.0f} tokens on average"
    )

    naive_careers, taken = [], 0
    for c in careers:  # whole people, up to the requested number of person-years
        if taken >= args.naive_person_years:
            break
        naive_careers.append(c)
        taken += len(c.prompt_ends)
    scorer.score(careers[:2])  # warm-up (allocator, kernels), not timed
    scorer.score_naive(careers[:1])
    # Rounds alternate the two methods, so both see the same load on a shared machine.
    rounds = max(1, min(args.rounds, len(naive_careers)))
    fast_parts, naive_parts = [], []
    fast_s = fast_cpu = naive_s = naive_cpu = 0.0
    for r in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        fast_parts.append(scorer.score(careers[r::rounds]))
        fast_s, fast_cpu = fast_s + time.perf_counter() - start, fast_cpu + time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        naive_parts.append(scorer.score_naive(naive_careers[r::rounds]))
        naive_s, naive_cpu = naive_s + time.perf_counter() - start, naive_cpu + time.process_time() - cpu
    fast = np.concatenate(fast_parts)
    naive = np.concatenate(naive_parts)
    # Person-years both methods scored, in the same order, for the agreement figure.
    both = np.concatenate([scorer.score(naive_careers[r::rounds]) for r in range(rounds)])

    diff = float(np.abs(both - naive).max())
    # CPU time of this process is printed too: on a shared machine it moves less than wall time.
    for name, rows, wall, used in (
        ("fast (prefix cache + trie)", len(fast), fast_s, fast_cpu),
        (f"naive (batch {args.naive_batch})", len(naive), naive_s, naive_cpu),
    ):
        print(
            f"{name:>30}: {rows:5d} person-years in {wall:7.2f} s wall = {rows / wall:8.2f} person-years/s "
            f"({rows / used:8.2f} per CPU-second)"
        )
    print(
        f"{'ratio':>30}: {(len(fast) / fast_s) / (len(naive) / naive_s):.1f}x wall, "
        f"{(len(fast) / fast_cpu) / (len(naive) / naive_cpu):.1f}x CPU   "
        f"(max |fast - naive| log p = {diff:.2e})"
    )


if __name__ == "__main__":
    main()
