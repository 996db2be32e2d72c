"""Synthetic panels: presets, determinism, the written folder, and what each preset records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from laborlm.config import build, to_dict
from laborlm.errors import ConfigError, LaborLMError
from laborlm.occupations.taxonomy import MANUAL_GROUP, Taxonomy
from laborlm.readers import read_panel
from laborlm.schema import COLLEGE_LEVELS, PANEL_SCHEMA
from laborlm.synthetic import PRESETS, SynthConfig, generate_panel, load_preset, load_synth_config
from laborlm.synthetic.generate import generate_shard

TAX = Taxonomy.default()


def _small(preset: str, people: int = 400, **changes: object) -> SynthConfig:
    return dataclasses.replace(load_preset(preset), people=people, shard_size=150, **changes)  # type: ignore[arg-type]


def test_presets_share_the_market_but_not_the_population() -> None:
    """Pretraining on resumes is worthwhile because every preset has the same dynamics and market seed."""
    base = SynthConfig()
    for name in PRESETS:
        cfg = load_preset(name)
        assert cfg.dynamics == base.dynamics and cfg.market_seed == base.market_seed
        assert cfg.source == name
    assert load_preset("resumes").population != base.population
    with pytest.raises(ConfigError, match="unknown synthetic preset"):
        load_preset("cps")


def test_presets_round_trip_through_the_config_loader() -> None:
    for name in PRESETS:
        cfg = load_preset(name)
        assert build(SynthConfig, to_dict(cfg)) == cfg


def test_config_checks_report_problems() -> None:
    with pytest.raises(ConfigError, match="race_shares"):
        build(SynthConfig, {"population": {"race_shares": [0.5, 0.5]}})
    with pytest.raises(ConfigError, match="birth_years"):
        build(SynthConfig, {"population": {"birth_years": [1990, 2010]}})  # too young for the last wave


def test_generation_is_deterministic_and_shard_local() -> None:
    cfg = _small("psid")
    a, b = generate_shard(cfg, 1), generate_shard(cfg, 1)
    assert a.equals(b)
    other_seed = generate_shard(dataclasses.replace(cfg, seed=1), 1)
    assert not a.equals(other_seed)
    ids = a.column("person_id").to_pylist()
    assert ids[0] == "psid-00000150" and ids == sorted(ids)


def test_wages_do_not_touch_careers() -> None:
    """Wages are outputs: switching them off or removing the type effect leaves every career and the oracle."""
    cfg = _small("psid", people=150)
    on = generate_shard(cfg, 0)
    for wages in (
        dataclasses.replace(cfg.wages, enabled=False),
        dataclasses.replace(cfg.wages, wage_type_effect=0.0),
    ):
        other = generate_shard(dataclasses.replace(cfg, wages=wages), 0)
        for col in ("person_id", "year", "occupation", "education", "oracle_logp"):
            assert on.column(col).equals(other.column(col))
    assert on.column("wage").null_count < on.num_rows


@pytest.mark.parametrize("preset", PRESETS)
def test_panel_folder_validates_and_records_what_the_preset_says(preset: str, tmp_path: Path) -> None:
    cfg = _small(preset)
    out = tmp_path / preset
    summary = generate_panel(cfg, out)
    assert summary.people == cfg.people and summary.files == cfg.num_shards == 3
    assert sorted(p.name for p in out.iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
        "synth.yaml",
        "taxonomy.csv",
    ]
    assert load_synth_config(out) == cfg  # the data carry their generator's exact config
    read = read_panel(out)  # the real reader: schema, allowed values, static columns, one row per person-year
    table = read.table
    assert read.counts.rows_rejected == 0 and table.num_rows == summary.rows
    assert table.schema == PANEL_SCHEMA
    logp = table.column("oracle_logp").to_numpy()
    assert np.all(np.isfinite(logp)) and np.all(logp <= 0)
    assert summary.oracle_perplexity == pytest.approx(float(np.exp(-logp.mean())))
    occ = TAX.indices(table.column("occupation").to_pylist())
    special = TAX.special_mask[occ]
    wage = table.column("wage")
    if preset == "resumes":
        assert not special.any()
        assert table.column("gender").null_count == table.column("race").null_count == table.num_rows
        assert table.column("birth_year").null_count == table.num_rows and wage.null_count == table.num_rows
        assert table.column("region").null_count == 0
        edu_by_person = _last_known_education(table)
        missing = np.mean([e is None for e in edu_by_person.values()])
        assert 0.35 < missing < 0.65
        known = [e for e in edu_by_person.values() if e is not None]
        assert np.mean([e in COLLEGE_LEVELS for e in known]) > 0.4  # college graduates over-represented
        manual = np.mean(TAX.group_index[occ] == TAX.groups.index(MANUAL_GROUP))
        assert manual < 0.12
    else:
        assert special.any()
        for col in ("gender", "race", "birth_year", "region", "education"):
            assert table.column(col).null_count == 0
        # Wages exactly where someone works.
        assert np.array_equal(np.asarray(pc.is_null(wage)), special)
        # Education never falls within a person.
        _assert_education_monotone(table)


def _last_known_education(table: pa.Table) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pid, edu in zip(table.column("person_id").to_pylist(), table.column("education").to_pylist()):
        out[pid] = edu if edu is not None else out.get(pid)
    return out


def _assert_education_monotone(table: pa.Table) -> None:
    from laborlm.schema import EDUCATION_LEVELS

    pid = table.column("person_id").to_pylist()
    level = np.array([EDUCATION_LEVELS.index(e) for e in table.column("education").to_pylist()])
    same = np.array([a == b for a, b in zip(pid[1:], pid[:-1])])
    assert np.all(np.diff(level)[same] >= 0)


def test_generate_panel_replaces_its_own_folder_only(tmp_path: Path) -> None:
    out = tmp_path / "panel"
    generate_panel(_small("resumes", people=450), out)
    generate_panel(_small("resumes", people=100), out)  # fewer shards: no stale shard survives
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "synth.yaml", "taxonomy.csv"]
    assert load_synth_config(out) == _small("resumes", people=100)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(LaborLMError, match="refusing"):
        generate_panel(_small("resumes", people=100), out)


def test_ray_workers_need_ray_initialised_by_the_caller(tmp_path: Path) -> None:
    with pytest.raises(LaborLMError, match="num_workers must be >= 1"):
        generate_panel(_small("psid", people=10), tmp_path / "x", num_workers=0)
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray already initialised in this session (library code never calls ray.init either way)")
    with pytest.raises(LaborLMError, match="ray.init"):
        generate_panel(_small("psid", people=10), tmp_path / "x", num_workers=2)
    assert not (tmp_path / "x").exists()
