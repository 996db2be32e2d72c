"""The Llama-style model size family by name: shapes and nominal parameter counts, nothing else.

A leaf module (no laborlm imports) so that configs can validate ``model.size`` without importing the model
builders in ``training.models`` (which import them back for type hints), and so sweeps and benchmarks can
list the sizes without pulling in torch or transformers.

Nominal sizes are for the corpus tokenizer's default vocabulary (4,096 tokens); a larger vocabulary adds
``2 * vocab * hidden`` (embeddings and output head). ``llama-1b`` has TinyLlama-1.1B's shape (grouped-query
attention, 4 KV heads).
"""

from __future__ import annotations

# name -> LlamaConfig shape.
# Parameter counts (vocab 4,096): 0.22M, 0.43M, 0.92M, 1.67M, 10.0M, 48.5M, 163M, 407M, 986M.
_SHAPES = {  # name: (hidden, layers, attention heads, key/value heads, MLP width)
    "llama-200k": (24, 2, 2, 2, 96),  # the two smallest exist for local scaling sweeps (embeddings dominate)
    "llama-400k": (40, 4, 4, 4, 160),
    "llama-1m": (64, 6, 4, 4, 256),
    "llama-2m": (96, 6, 4, 4, 384),  # llama-1m 1.5x as wide: ~2x its FLOPs per token
    "llama-10m": (256, 10, 4, 4, 688),
    "llama-50m": (512, 14, 8, 8, 1376),
    "llama-150m": (1024, 12, 16, 16, 2816),
    "llama-400m": (1280, 20, 20, 20, 3456),
    "llama-1b": (2048, 22, 32, 4, 5632),
}
SIZES: dict[str, dict[str, int]] = {
    name: {
        "hidden_size": h,
        "num_hidden_layers": n,
        "num_attention_heads": a,
        "num_key_value_heads": kv,
        "intermediate_size": ff,
    }
    for name, (h, n, a, kv, ff) in _SHAPES.items()
}
NOMINAL_PARAMS = {
    "llama-200k": 2e5,
    "llama-400k": 4e5,
    "llama-1m": 1e6,
    "llama-2m": 2e6,
    "llama-10m": 10e6,
    "llama-50m": 50e6,
    "llama-150m": 150e6,
    "llama-400m": 400e6,
    "llama-1b": 1e9,
}
