"""Scoring large test sets with Ray Data: people in batches over a pool of model-holding actors.

    ds = ray.data.read_parquet(corpus_files(corpus)).filter(expr="split == 'test'")   # rendered careers
    scored = score_dataset(ds, "runs/llm-model", num_workers=4, use_gpu=True)       # one row per person-year
    scored.write_parquet("runs/scores")

    raw = score_panel(test_panel, model, num_workers=2)      # [n_rows, K], rows in panel order
    evaluate_model(on_ray_data(model, num_workers=2), test)  # a NextOccupationModel that scores on Ray Data

Each actor loads the model once (from a saved folder: the path must be readable by every node; or the
in-memory model, shipped through the object store) and scores whole people, since a person's years share
one forward pass (``llm.scoring``). Input rows are rendered careers (``corpus.CORPUS_SCHEMA``: ``text``,
``spans``, ``targets``, ``years``, ``person_id``, ``source``), so a built corpus is scored as it is; a
panel is rendered on the driver with Arrow kernels first. CPU actors take one CPU and one torch thread
each (the pool, not torch, uses the cores); GPU actors take one GPU.

Whether to score over Ray Data is the caller's decision: ``LlmOccupationModel`` always scores in its own
process, and ``on_ray_data`` wraps it so that ``log_probs`` goes through ``score_panel``. Arrows point from
here to ``llm.model``, never back.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm import schema
from laborlm.corpus.render import render_table
from laborlm.errors import LaborLMError
from laborlm.llm.model import TAXONOMY_FILE, TEMPLATE_FILE, LlmOccupationModel
from laborlm.llm.scoring import LlmScores
from laborlm.sequences import panel_arrays

if TYPE_CHECKING:
    import ray.data

    from laborlm.occupations.taxonomy import Taxonomy

logger = logging.getLogger(__name__)

Output = Literal["log_probs", "hidden"]
_ORDER = "_order"  # person ordinal added by score_panel to put rows back in panel order


def score_dataset(
    careers: ray.data.Dataset,
    model: LlmOccupationModel | str | Path,
    *,
    num_workers: int = 2,
    batch_size: int = 32,
    use_gpu: bool = False,
    output: Output = "log_probs",
) -> ray.data.Dataset:
    """A lazy dataset with one row per person-year: ``person_id``, ``source``, ``year``, ``target`` (code),
    ``t`` (year index in the career), any ``_order`` column passed through, and ``log_probs`` (``[K]`` raw
    log p of every label, float64) or ``hidden`` (``[D]`` float32 last hidden state at the prompt end).

    Args:
        model: a saved ``LlmOccupationModel`` folder, or the model itself.
        batch_size: people per batch (one forward pass over their texts, then the candidate passes).
    """
    import ray
    import ray.data

    if num_workers < 1:
        raise LaborLMError(f"num_workers must be >= 1, got {num_workers}")
    source = str(model) if isinstance(model, (str, Path)) else ray.put(model)
    return careers.map_batches(
        _ScoreActor,
        fn_constructor_kwargs={"model": source, "output": output},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=num_workers),
        num_cpus=0 if use_gpu else 1,
        num_gpus=1 if use_gpu else 0,
    )


def score_panel(
    panel: pa.Table,
    model: LlmOccupationModel | str | Path,
    *,
    num_workers: int = 2,
    batch_size: int = 32,
    use_gpu: bool = False,
    output: Output = "log_probs",
) -> np.ndarray:
    """``[n_rows, K]`` raw log-probabilities (or ``[n_rows, D]`` hidden states) of a canonical panel, rows in
    panel order, computed by ``score_dataset`` on Ray Data; the result is collected on the driver."""
    import ray.data

    taxonomy, template = _taxonomy_and_template(
        model if isinstance(model, LlmOccupationModel) else Path(model)
    )
    rendered = render_table(panel, taxonomy, template)
    rendered = rendered.append_column(_ORDER, pa.array(np.arange(rendered.num_rows), pa.int64()))
    # A few blocks per actor, cut on person boundaries (rendered rows are people), so the pool stays busy.
    bounds = np.linspace(0, rendered.num_rows, max(1, min(rendered.num_rows, num_workers * 4)) + 1).astype(
        int
    )
    ds = ray.data.from_arrow([rendered.slice(lo, hi - lo) for lo, hi in itertools.pairwise(bounds)])
    scored = score_dataset(
        ds, model, num_workers=num_workers, batch_size=batch_size, use_gpu=use_gpu, output=output
    )
    table = pa.concat_tables(ray.get(scored.to_arrow_refs()))
    table = table.sort_by([(_ORDER, "ascending"), ("t", "ascending")])
    if table.num_rows != panel.num_rows:
        raise LaborLMError(f"scored {table.num_rows} person-years, the panel has {panel.num_rows}")
    values = table.column(output).combine_chunks()
    width = len(values[0]) if len(values) else 0
    out = np.asarray(pc.list_flatten(values).to_numpy(zero_copy_only=False)).reshape(len(values), width)
    return out.astype(np.float64 if output == "log_probs" else np.float32)


class RayDataOccupationModel:
    """A ``LlmOccupationModel`` whose ``log_probs`` are computed by ``score_panel`` on a Ray Data actor pool.

    Implements ``NextOccupationModel`` by delegation, so the evaluation harness and comparison tables take it
    like any other model; everything but scoring (``fit``, ``save``, ``name``, ``taxonomy``) is the wrapped
    model's. Ray must be initialised by the caller.
    """

    def __init__(
        self, model: LlmOccupationModel, *, num_workers: int = 2, batch_size: int = 32, use_gpu: bool = False
    ) -> None:
        if num_workers < 1:
            raise LaborLMError(f"num_workers must be >= 1, got {num_workers}")
        self.model = model
        self.name = model.name
        self.taxonomy: Taxonomy = model.taxonomy
        self.kind = model.kind
        self.num_workers = num_workers  # Ray Data actors, each holding one copy of the model
        self.batch_size = batch_size  # people per Ray Data batch
        self.use_gpu = use_gpu

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        self.model.fit(train, valid)

    def score(self, panel: pa.Table) -> LlmScores:
        """Raw label log-probabilities of every row (panel order) with the observed targets."""
        raw = score_panel(
            panel, self.model, num_workers=self.num_workers, batch_size=self.batch_size, use_gpu=self.use_gpu
        )
        return LlmScores(raw, panel_arrays(panel, self.taxonomy).occ)

    def raw_log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` log p_raw, as ``LlmOccupationModel.raw_log_probs``."""
        return self.score(panel).raw

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` float64 log-probabilities renormalised over the K labels, rows as in ``panel``."""
        return self.score(panel).normalized

    def save(self, path: Path) -> None:
        self.model.save(path)


def on_ray_data(
    model: LlmOccupationModel, *, num_workers: int | None, batch_size: int = 32
) -> LlmOccupationModel | RayDataOccupationModel:
    """``model`` scored over ``num_workers`` Ray Data actors; ``num_workers=None`` returns it unchanged
    (in-process scoring), so a workflow's optional ``workers`` setting passes straight through."""
    if num_workers is None:
        return model
    return RayDataOccupationModel(model, num_workers=num_workers, batch_size=batch_size)


class _ScoreActor:
    """Holds one model; scores a batch of rendered careers into person-year rows."""

    def __init__(self, model: Any, output: Output) -> None:
        import ray
        import torch

        if isinstance(model, ray.ObjectRef):
            model = ray.get(model)
        if isinstance(model, str):
            model = LlmOccupationModel.load(Path(model))
        if ray.is_initialized() and ray.get_gpu_ids():
            model.lm.to("cuda")
        else:
            torch.set_num_threads(1)  # one CPU per actor: the pool, not torch, parallelises
        self.scorer = model.scorer
        self.output = output

    def __call__(self, batch: pa.Table) -> pa.Table:
        careers = self.scorer.encode_rendered(batch)
        if self.output == "log_probs":
            values = self.scorer.score(careers)
            column = pa.FixedSizeListArray.from_arrays(
                pa.array(values.ravel(), pa.float64()), values.shape[1]
            )
        else:
            values = self.scorer.hidden_states(careers)
            column = pa.FixedSizeListArray.from_arrays(
                pa.array(values.ravel(), pa.float32()), values.shape[1]
            )
        counts = np.asarray(
            pc.list_value_length(batch.column("targets")).to_numpy(zero_copy_only=False), np.int64
        )
        person = np.repeat(np.arange(batch.num_rows), counts)
        t = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        out = {
            schema.PERSON_ID: batch.column(schema.PERSON_ID).take(person),
            schema.SOURCE: batch.column(schema.SOURCE).take(person),
            schema.YEAR: pc.list_flatten(batch.column("years")),
            "target": pc.list_flatten(batch.column("targets")),
            "t": pa.array(t, pa.int32()),
        }
        if _ORDER in batch.column_names:
            out[_ORDER] = batch.column(_ORDER).take(person)
        out[self.output] = column
        return pa.table(out)


def _taxonomy_and_template(model: LlmOccupationModel | Path) -> tuple[Any, Any]:
    from laborlm.corpus.template import load_template
    from laborlm.occupations.taxonomy import Taxonomy

    if isinstance(model, Path):
        return Taxonomy.from_csv(model / TAXONOMY_FILE), load_template(model / TEMPLATE_FILE)
    return model.taxonomy, model.template
