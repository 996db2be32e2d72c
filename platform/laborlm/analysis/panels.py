"""Panels built from other panels' rows, and scoring them in bounded memory: what every analysis needs.

Every downstream analysis asks a ``NextOccupationModel`` about careers that were never observed: a real
history followed by sampled jobs (forecasting), a history with some jobs left out (rationales), every
possible intermediate job (exact multi-step probabilities). The only way to ask any model, the oracle and
language models included, is ``log_probs`` on a canonical panel, so those careers are built as panel rows:
rows of a real panel, taken by index, with their occupation replaced where a job was sampled and their
person id replaced so that each variant is a person of its own. Covariates (year, education, static
traits) always come from the real rows, as CAREER's forecasts use "updated values of dynamic covariates".

``score_rows`` then scores such a panel in chunks of whole careers (a row's distribution depends only on its
own person's earlier rows, so chunking changes no number) and keeps only the rows asked for: a forecast
needs one ``[K]`` distribution per sampled career, not one per row of its history.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import OCCUPATION, ORACLE_LOGP, PERSON_ID

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 50_000  # rows per log_probs call: bounds the [rows, K] float64 output (~140 MB at K=345)


def career_rows(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of careers given as ``(start, length)`` into a base panel, concatenated.

    Returns:
        ``rows`` ``[R]`` base-panel row of each output row, ``career`` ``[R]`` the career it belongs to,
        ``offset`` ``[C]`` first output row of each career.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    offset = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offset[1:])
    career = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(int(lengths.sum())) - offset[career]
    return np.asarray(starts, dtype=np.int64)[career] + position, career, offset


def build_panel(
    base: pa.Table,
    rows: np.ndarray,
    person_ids: np.ndarray,
    occupations: np.ndarray | None = None,
    taxonomy: Taxonomy | None = None,
) -> pa.Table:
    """A canonical panel of ``base``'s ``rows`` (``[R]``), with new person ids and, optionally, occupations.

    Args:
        person_ids: ``[R]`` the person id of each output row (each career variant must have its own).
        occupations: ``[R]`` taxonomy indices replacing the occupation, ``-1`` to keep the base row's.
        taxonomy: the index space of ``occupations`` (required with it).

    The ``oracle_logp`` column is nulled: it describes the observed career, not these variants (and the
    oracle warns when a panel's recorded values disagree with what it recomputes).
    """
    table = base.take(pa.array(np.asarray(rows, dtype=np.int64)))
    table = _replace(table, PERSON_ID, pa.array(np.asarray(person_ids, dtype=object), pa.string()))
    if occupations is not None:
        if taxonomy is None:
            raise ValueError("occupations given without the taxonomy that indexes them")
        occupations = np.asarray(occupations, dtype=np.int64)
        if (occupations >= 0).any():
            codes = np.asarray(taxonomy.codes, dtype=object)
            current = np.asarray(table.column(OCCUPATION).to_pylist(), dtype=object)
            replaced = np.where(occupations >= 0, codes[np.maximum(occupations, 0)], current)
            table = _replace(table, OCCUPATION, pa.array(replaced, pa.string()))
    if ORACLE_LOGP in table.column_names:
        table = _replace(table, ORACLE_LOGP, pa.nulls(table.num_rows, pa.float64()))
    return table


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """``table`` with column ``name`` replaced, keeping its field (type and nullability: the panel schema)."""
    i = table.column_names.index(name)
    return table.set_column(i, table.schema.field(i), values)


def variant_ids(base_ids: np.ndarray, variant: np.ndarray, tag: str = "~") -> np.ndarray:
    """``[n]`` ids ``<base id><tag><variant>``: distinct per (person, variant), clustered like the inputs."""
    width = max(len(str(int(np.max(variant, initial=0)))), 1)
    suffix = np.char.zfill(np.asarray(variant, dtype=np.int64).astype(str), width)
    return np.char.add(np.char.add(np.asarray(base_ids).astype(str), tag), suffix).astype(object)


def score_rows(
    model: NextOccupationModel,
    panel: pa.Table,
    wanted: np.ndarray,
    *,
    freeze_year: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> np.ndarray:
    """``[len(wanted), K]`` log-probabilities of the panel rows ``wanted``, scored in chunks of whole careers.

    Args:
        wanted: row indices into ``panel`` (any order).
        freeze_year: models with a learned year covariate (the neural models) see ``min(year,
            freeze_year)`` instead of the year: a model fitted on data up to a cutoff has never trained the
            embeddings of later years, so CAREER's forecasts hold year effects at the cutoff. Other models
            are scored on the panel as it is (Markov chains ignore the year; for the synthetic oracle the
            year is part of the true process).
        max_rows: panel rows per ``log_probs`` call; a single career longer than this is scored alone.
    """
    wanted = np.asarray(wanted, dtype=np.int64)
    n = panel.num_rows
    ids = panel.column(PERSON_ID)
    new = np.ones(n, dtype=bool)
    if n > 1:
        import pyarrow.compute as pc

        new[1:] = ~np.asarray(
            pc.equal(ids.slice(1), ids.slice(0, n - 1)).to_numpy(zero_copy_only=False), dtype=bool
        )
    starts = np.flatnonzero(new)
    # Chunk boundaries at career starts: each chunk ends at the last career start within max_rows rows of
    # its beginning (or at the next start, when one career alone is longer than that).
    edges = np.append(starts, n)
    bounds = [0]
    while bounds[-1] < n:
        b = bounds[-1]
        nxt = int(edges[np.searchsorted(edges, b + max_rows, side="right") - 1])
        if nxt <= b:
            nxt = int(edges[np.searchsorted(edges, b, side="right")])
        bounds.append(nxt)
    K = len(model.taxonomy)
    out = np.empty((len(wanted), K))
    order = np.argsort(wanted, kind="stable")
    sorted_wanted = wanted[order]
    for lo, hi in itertools.pairwise(bounds):
        a, b = np.searchsorted(sorted_wanted, [lo, hi])
        if a == b:
            continue
        chunk = panel.slice(lo, hi - lo)
        lp = _log_probs(model, chunk, freeze_year)
        out[order[a:b]] = lp[sorted_wanted[a:b] - lo]
    return out


def _log_probs(model: NextOccupationModel, panel: pa.Table, freeze_year: int | None) -> np.ndarray:
    if freeze_year is not None and _is_neural(model):
        return _neural_log_probs_frozen_year(model, panel, freeze_year)
    return model.log_probs(panel)


def _is_neural(model: Any) -> bool:
    """Whether ``model`` is a ``NeuralOccupationModel`` without importing torch when it cannot be one."""
    module = sys.modules.get("laborlm.models.neural")
    return module is not None and isinstance(model, module.NeuralOccupationModel)


def _neural_log_probs_frozen_year(model: Any, panel: pa.Table, year: int) -> np.ndarray:
    """``NeuralOccupationModel.log_probs`` with the year covariate capped at ``year``.

    The year cannot be changed in the panel itself: the gap since the previous observation (another
    covariate) and the order of rows come from the real years. So the panel is encoded as the model encodes
    it, the year column of the covariates is capped, and the network is run the way ``log_probs`` runs it.
    """
    import torch

    from laborlm.models.encoding import YEAR_MAX, YEAR_MIN, covariate_column, encode_panel, iter_batches

    encoded = encode_panel(panel, model.taxonomy)
    covariates = encoded.covariates.copy()
    column = covariate_column("year")
    covariates[:, column] = np.minimum(
        covariates[:, column], int(np.clip(year, YEAR_MIN, YEAR_MAX)) - YEAR_MIN
    )
    encoded = dataclasses.replace(encoded, covariates=covariates)
    out = np.empty((encoded.n_rows, len(model.taxonomy)), dtype=np.float64)
    network = model.network
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            for batch in iter_batches(encoded, model.config.fit.max_tokens):
                values = network(batch, dtype=torch.float64)[batch.mask]
                out[batch.rows[batch.mask].numpy()] = values.numpy()
    finally:
        network.train(was_training)
    return out


def sample_categorical(
    log_probs: np.ndarray, rng: np.random.Generator, size: int | None = None
) -> np.ndarray:
    """Draws from each row's distribution (inverse CDF): ``[n]`` or, with ``size``, ``[n, size]``.

    Rows are renormalised, so a model leaving a little mass outside the taxonomy still samples within it.
    """
    p = np.exp(log_probs - np.max(log_probs, axis=1, keepdims=True))
    c = np.cumsum(p, axis=1)
    last = log_probs.shape[1] - 1
    if size is None:
        u = (1.0 - rng.random(len(p))) * c[:, -1]  # in (0, total]: never lands on a zero-probability state
        one: np.ndarray = np.minimum((c < u[:, None]).sum(axis=1), last)
        return one
    u = (1.0 - rng.random((len(p), size))) * c[:, -1:]
    draws = np.empty((len(p), size), dtype=np.int64)
    for i in range(len(p)):  # one binary search per draw; memory stays at one row of [K]
        draws[i] = np.searchsorted(c[i], u[i], side="left")
    out: np.ndarray = np.minimum(draws, last)
    return out
