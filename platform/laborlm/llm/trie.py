"""The K candidate continuations as a token trie, and the tree attention that scores them all in one pass.

Every occupation label ``j`` is scored as the token sequence of ``" " + label_j + "\\n"``
(labor_llm_spec.md §5.2). Labels share prefixes ("Managers, ...", "Supervisors of ..."), so their token
sequences form a trie: a node is a distinct token prefix, and its model output (the next-token distribution
after that prefix) serves every label below it. Scoring all labels after a prompt then needs one model
position per *internal* node, not one per (label, token):

* a node's token is fed at position ``prompt_end + depth - 1`` and may attend to the prompt and to its own
  ancestors (and itself) only: the tree attention mask, which reproduces exactly what a causal model sees
  when it reads ``prompt + label`` as one sequence;
* leaves (almost always the final ``"\\n"``) are never fed to the model: their probability is read off their
  parent's output, so the last token of every label costs nothing.

``log p(label_j | prompt)`` is the sum of the edge log-probabilities on the path to the label's end node.

A trie larger than ``max_nodes`` internal nodes is split into groups of whole labels (in token order, so
labels that share prefixes stay together); each group is its own trie and pass, ancestors shared between
groups are recomputed. This bounds the memory of one pass whatever the tokenizer does to the titles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ROOT = -1  # parent of the first token of every label: the prompt's last position


@dataclass(frozen=True)
class CandidateTrie:
    """A trie over the token sequences of some candidates (a group of the K labels).

    Node ids are ``0..N-1`` in insertion order, so a parent always has a smaller id than its children.
    """

    candidates: np.ndarray  # [k] int64 global candidate (taxonomy) index of each label in this trie
    token: np.ndarray  # [N] int64 token id of each node
    parent: np.ndarray  # [N] int64 parent node, or ROOT
    depth: np.ndarray  # [N] int64 1-based: the first label token has depth 1
    paths: np.ndarray  # [k, D] int64 nodes from the root to each label's end node, padded with -1
    query: np.ndarray  # [Q] int64 internal nodes (with children): the positions fed to the model
    source_row: np.ndarray  # [N] int64 which output predicts node n: 0 = the prompt end, 1 + q = query q
    tree_mask: np.ndarray  # [Q, Q] bool: query a may attend to query b (b is an ancestor of a, or a itself)

    @property
    def n_nodes(self) -> int:
        return len(self.token)

    @property
    def n_query(self) -> int:
        return len(self.query)

    @classmethod
    def build(
        cls, token_ids: Sequence[Sequence[int]], candidates: Sequence[int] | None = None
    ) -> CandidateTrie:
        """The trie of ``token_ids`` (one non-empty sequence per candidate).

        Raises:
            ValueError: an empty token sequence, or two candidates with the same tokens (ambiguous labels).
        """
        index = np.arange(len(token_ids)) if candidates is None else np.asarray(candidates, dtype=np.int64)
        children: dict[tuple[int, int], int] = {}
        token: list[int] = []
        parent: list[int] = []
        depth: list[int] = []
        ends: list[int] = []
        paths: list[list[int]] = []
        for k, ids in enumerate(token_ids):
            if not ids:
                raise ValueError(f"candidate {int(index[k])} has no tokens")
            node, path = ROOT, []
            for d, tok in enumerate(ids):
                key = (node, int(tok))
                if key not in children:
                    children[key] = len(token)
                    token.append(int(tok))
                    parent.append(node)
                    depth.append(d + 1)
                node = children[key]
                path.append(node)
            ends.append(node)
            paths.append(path)
        if len(set(ends)) != len(ends):
            raise ValueError("two candidates have the same token sequence")
        parents = np.asarray(parent, dtype=np.int64)
        has_child = np.zeros(len(token), dtype=bool)
        has_child[parents[parents >= 0]] = True
        query = np.flatnonzero(has_child)
        query_of = np.full(len(token), -1, dtype=np.int64)
        query_of[query] = np.arange(len(query))
        source_row = np.where(parents >= 0, 1 + query_of[np.maximum(parents, 0)], 0)
        # Ancestor-or-self among query nodes: walk each query node up to the root.
        tree_mask = np.zeros((len(query), len(query)), dtype=bool)
        for a, start in enumerate(query.tolist()):
            node = start
            while node != ROOT:
                tree_mask[a, query_of[node]] = True
                node = int(parents[node])
        width = max(len(p) for p in paths)
        padded = np.full((len(paths), width), -1, dtype=np.int64)
        for k, path in enumerate(paths):
            padded[k, : len(path)] = path
        return cls(
            candidates=index,
            token=np.asarray(token, dtype=np.int64),
            parent=parents,
            depth=np.asarray(depth, dtype=np.int64),
            paths=padded,
            query=query,
            source_row=source_row.astype(np.int64),
            tree_mask=tree_mask,
        )


def build_groups(token_ids: Sequence[Sequence[int]], max_nodes: int) -> tuple[CandidateTrie, ...]:
    """Split the candidates into tries of at most ``max_nodes`` internal nodes each (a single candidate
    longer than that gets a trie of its own), keeping candidates in token order so prefixes stay together."""
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be >= 1, got {max_nodes}")
    order = sorted(range(len(token_ids)), key=lambda k: tuple(token_ids[k]))
    groups: list[list[int]] = []
    prefixes: set[tuple[int, ...]] = set()  # internal nodes of the current group, as token prefixes
    for k in order:
        ids = tuple(token_ids[k])
        mine = {ids[:d] for d in range(1, len(ids))}  # the label's internal nodes (its end node is a leaf)
        if groups and len(prefixes | mine) <= max_nodes:
            groups[-1].append(k)
            prefixes |= mine
        else:
            groups.append([k])
            prefixes = set(mine)
    return tuple(CandidateTrie.build([token_ids[k] for k in g], g) for g in groups)
