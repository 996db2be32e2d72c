"""The oracle as a model: whole next-step distributions from panel rows alone, scored by the shared harness."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from laborlm.baselines.base import NextOccupationModel
from laborlm.baselines.markov import MarkovModel
from laborlm.errors import CheckpointError, LaborLMError
from laborlm.evaluation.harness import evaluate_model
from laborlm.readers import read_panel, write_panel
from laborlm.sequences import panel_arrays
from laborlm.splits import SplitConfig, assign_splits, select_split
from laborlm.synthetic import OracleModel, generate_panel, load_preset, load_synth_config

PRESETS = (
    "psid",
    "resumes",
)  # with special states and birth years; without either, half the education missing


@pytest.fixture(scope="module")
def panels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, pa.Table]]:
    out = {}
    for preset in PRESETS:
        folder = tmp_path_factory.mktemp("oracle") / preset
        generate_panel(dataclasses.replace(load_preset(preset), people=300, shard_size=120), folder)
        out[preset] = (folder, read_panel(folder).table)
    return out


def _logsumexp(lp: np.ndarray) -> np.ndarray:
    mx = lp.max(axis=1, keepdims=True)
    return np.log(np.exp(lp - mx).sum(axis=1)) + mx[:, 0]


@pytest.mark.parametrize("preset", PRESETS)
def test_rows_are_distributions_whose_targets_are_the_recorded_oracle(
    preset: str, panels: dict[str, tuple[Path, pa.Table]]
) -> None:
    folder, table = panels[preset]
    model = OracleModel.from_panel(folder)
    assert isinstance(model, NextOccupationModel) and model.name == "oracle"
    lp = model.log_probs(table)
    arrays = panel_arrays(table, model.taxonomy)
    assert lp.shape == (table.num_rows, len(model.taxonomy))
    np.testing.assert_allclose(_logsumexp(lp), 0.0, rtol=0, atol=1e-12)
    recorded = table.column("oracle_logp").to_numpy()
    np.testing.assert_allclose(lp[np.arange(len(arrays)), arrays.occ], recorded, rtol=0, atol=1e-9)
    special = model.taxonomy.special_mask
    if preset == "resumes":  # the process records no time out of work: those states are impossible
        assert np.all(np.isneginf(lp[:, special])) and np.all(np.isfinite(lp[:, ~special]))
    else:
        assert np.all(np.isfinite(lp))


@pytest.mark.parametrize("preset", PRESETS)
def test_a_subset_of_people_in_any_order_scores_as_in_the_whole_panel(
    preset: str, panels: dict[str, tuple[Path, pa.Table]]
) -> None:
    """Each person is scored from their own rows only. Equal to rounding, not bitwise: BLAS may sum a row's
    terms in another order when the batch has another number of rows."""
    folder, table = panels[preset]
    model = OracleModel.from_panel(folder)
    whole = model.log_probs(table)

    def same(a: np.ndarray, b: np.ndarray) -> None:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)  # -inf entries must coincide too

    is_test = np.asarray(pc.equal(assign_splits(table).column("split"), "test"))
    test = select_split(table, "test")
    assert 0 < test.num_rows < table.num_rows
    same(model.log_probs(test), whole[is_test])
    # People in reverse order (still clustered, years increasing): the same rows, moved with their people.
    starts = panel_arrays(table, model.taxonomy).starts
    bounds = np.append(starts, table.num_rows)
    order = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in reversed(range(len(starts)))])
    same(model.log_probs(table.take(order)), whole[order])
    # Small batches change nothing either.
    same(OracleModel(model.config, batch_people=7).log_probs(test), whole[is_test])


def test_save_load_and_the_recorded_config(panels: dict[str, tuple[Path, pa.Table]], tmp_path: Path) -> None:
    folder, table = panels["resumes"]
    model = OracleModel.from_panel(folder)
    assert (
        model.config
        == load_synth_config(folder)
        == dataclasses.replace(load_preset("resumes"), people=300, shard_size=120)
    )
    model.fit(table)  # nothing to fit
    model.save(tmp_path / "oracle")
    assert sorted(p.name for p in (tmp_path / "oracle").iterdir()) == ["synth.yaml"]
    loaded = OracleModel.load(tmp_path / "oracle")
    assert loaded.config == model.config
    head = table.slice(0, 200)
    np.testing.assert_array_equal(loaded.log_probs(head), model.log_probs(head))
    assert load_synth_config(tmp_path) is None
    with pytest.raises(CheckpointError, match="synth.yaml"):
        OracleModel.load(tmp_path)
    with pytest.raises(LaborLMError, match="synth.yaml"):
        OracleModel.from_panel(tmp_path)


def test_panel_folders_with_a_recorded_config_read_and_write(
    panels: dict[str, tuple[Path, pa.Table]], tmp_path: Path
) -> None:
    """Readers skip synth.yaml; write_panel writes anywhere else but never over the generator's folder."""
    folder, table = panels["psid"]
    with pytest.raises(LaborLMError, match="synth.yaml"):
        write_panel(table, folder, read_panel(folder).taxonomy)
    copy = tmp_path / "copy"
    write_panel(table, copy, read_panel(folder).taxonomy)
    assert read_panel(copy).table.equals(table) and load_synth_config(copy) is None


def test_the_harness_scores_the_oracle_at_the_floor_and_markov_above_it(
    panels: dict[str, tuple[Path, pa.Table]],
) -> None:
    folder, table = panels["psid"]
    split = SplitConfig()
    train, test = select_split(table, "train", split), select_split(table, "test", split)
    oracle = evaluate_model(OracleModel.from_panel(folder), test)
    floor = float(np.exp(-np.mean(test.column("oracle_logp").to_numpy())))
    assert oracle.perplexity == pytest.approx(floor, rel=1e-12)
    assert oracle.oracle_gap == pytest.approx(0.0, abs=1e-9)
    assert 0.5 < oracle.stay_auc <= 1.0 and np.isfinite(oracle.stay_calibration_error)
    markov = MarkovModel(OracleModel.from_panel(folder).taxonomy, order=1)
    markov.fit(train)
    assert evaluate_model(markov, test).perplexity > oracle.perplexity


def test_wrong_source_is_refused_and_a_wrong_config_is_reported(
    panels: dict[str, tuple[Path, pa.Table]], caplog: pytest.LogCaptureFixture
) -> None:
    psid_folder, psid = panels["psid"]
    _, resumes = panels["resumes"]
    with pytest.raises(LaborLMError, match="source"):
        OracleModel.from_panel(psid_folder).log_probs(resumes)
    other_market = dataclasses.replace(OracleModel.from_panel(psid_folder).config, market_seed=7)
    with caplog.at_level(logging.WARNING, logger="laborlm.synthetic.oracle"):
        OracleModel(other_market).log_probs(psid.slice(0, 100))
    assert "differ from the panel's oracle_logp" in caplog.text
