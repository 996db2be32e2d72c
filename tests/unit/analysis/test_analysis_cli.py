"""``laborlm analyze <kind>`` end to end on a tiny quick configuration (synthetic PSID generated in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laborlm.analysis.config import AnalyzeConfig
from laborlm.cli import main
from laborlm.config import load_config
from laborlm.errors import ConfigError

TINY = [
    "data.people=300",
    "models=oracle,markov1",
    "forecast.samples=20",
    "forecast.max_people=4",
    "forecast.horizons=2,4",
    "rationale.examples=1",
    "rationale.similar_pairs=2",
]
EXPECTED = {
    "forecast": ["forecast.csv", "direct_vs_composed.csv", "forecast.png"],
    "wages": ["wages.csv", "wages.png"],
    "subgroups": ["subgroup_rates.csv", "subgroup_perplexity.csv", "calibration.csv", "calibration.png"],
    "rationale": ["rationales.csv", "similar_careers.csv", "rationale.png"],
}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output folder for the module, so the generated panel (under out_dir/data) is made once."""
    return tmp_path_factory.mktemp("analyze")


@pytest.mark.parametrize("kind", ["forecast", "wages", "rationale"])
def test_analyze_subcommand_writes_its_report_tables_and_figures(kind: str, out_dir: Path, capsys) -> None:
    assert main(["-q", "analyze", kind, f"out_dir={out_dir}", "tracking.enabled=false", *TINY]) == 0
    folder = out_dir / kind
    for name in ["report.md", "config.yaml", "metrics.json", *EXPECTED[kind]]:
        assert (folder / name).stat().st_size > 0, name
    assert f"# laborlm analyze {kind}" in capsys.readouterr().out
    assert json.loads((folder / "metrics.json").read_text())
    # The written config reloads strictly and reruns the same analysis.
    assert load_config(AnalyzeConfig, folder / "config.yaml").data.people == 300


def test_analyze_subgroups_logs_tables_and_figures_to_mlflow(out_dir: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{out_dir / 'mlflow.db'}"
    assert (
        main(["-q", "analyze", "subgroups", f"out_dir={out_dir}", f"tracking.tracking_uri={uri}", *TINY]) == 0
    )
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("laborlm").experiment_id])
    assert run.data.params["analysis"] == "subgroups"
    assert run.data.metrics["subgroups/oracle/perplexity"] > 1.0
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "subgroups")}
    assert {"subgroups/report.md", "subgroups/calibration.png", "subgroups/subgroup_rates.csv"} <= logged


def test_bad_analysis_config_is_a_one_line_error(capsys) -> None:
    assert main(["analyze", "forecast", "models=oracle,markov7"]) == 2
    assert "markov7" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="samples"):
        load_config(AnalyzeConfig, None, ["forecast.samples=1"])
    with pytest.raises(ConfigError, match="synth_overrides"):
        load_config(AnalyzeConfig, None, ["data.panel=somewhere", "data.synth_overrides=people=5"])


def test_synth_overrides_change_the_generated_panel(tmp_path: Path) -> None:
    from laborlm.analysis.runner import generate_panel_for
    from laborlm.synthetic import load_synth_config

    base = load_config(AnalyzeConfig, None, [f"out_dir={tmp_path}", "data.people=50"])
    typed = load_config(
        AnalyzeConfig,
        None,
        [f"out_dir={tmp_path}", "data.people=50", "data.synth_overrides=wages.wage_type_effect=4"],
    )
    a, b = generate_panel_for(base), generate_panel_for(typed)
    assert a != b and load_synth_config(b).wages.wage_type_effect == 4.0
