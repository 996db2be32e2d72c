"""``laborlm analyze {forecast,wages,subgroups,rationale} [--config YAML] [key.path=value ...]``.

    laborlm analyze forecast                          # CAREER Tables 1-2 on the quick configuration
    laborlm analyze wages models=oracle,markov1       # CAREER Table 3
    laborlm analyze subgroups --config my.yaml        # LABOR-LLM's representativeness and calibration
    laborlm analyze rationale rationale.examples=5    # CAREER Figures 3 and 5

``add_analyze_parser`` registers the subcommand on the main parser (``laborlm.cli.build_parser``); its
handler loads the config strictly, calls ``run_analysis`` and prints the report. Kept free of heavy imports
so that building the parser stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

KINDS_HELP = {
    "forecast": "CAREER Tables 1-2: 2-, 4-, 6-year forecasting perplexity by sampling; exact oracle; direct vs composed",
    "wages": "CAREER Table 3: held-out R^2 of wage regressions with and without a model's representation",
    "subgroups": "LABOR-LLM: predicted vs observed rates and perplexity by education, gender, race; calibration plot",
    "rationale": "CAREER Figures 3 and 5: greedy rationales of predicted moves; most similar careers",
}


def add_analyze_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``analyze`` and its four analyses to ``subparsers`` (an ``add_subparsers()`` result)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "analyze", help="the papers' downstream analyses: forecasting, wages, subgroups, rationales",
        description="The papers' downstream analyses for every model, on synthetic or real panels.",
    )
    kinds = parser.add_subparsers(dest="analyze_command", required=True)
    for kind, text in KINDS_HELP.items():
        sp = kinds.add_parser(kind, help=text, description=text)
        sp.add_argument("--config", help="YAML with any AnalyzeConfig section (data, models, fit, forecast, ...)")
        sp.add_argument("overrides", nargs="*", help="dotted overrides, e.g. models=oracle,markov1 forecast.samples=200")
        sp.set_defaults(fn=cmd_analyze, analyze_kind=kind)
    return parser


def cmd_analyze(a: argparse.Namespace) -> int:
    """Load the config (YAML + overrides), run the analysis, print its report and where it went."""
    from laborlm.analysis.config import AnalyzeConfig
    from laborlm.analysis.runner import run_analysis
    from laborlm.config import load_config

    cfg = load_config(AnalyzeConfig, a.config, list(a.overrides))
    folder = run_analysis(a.analyze_kind, cfg)
    print((Path(folder) / "report.md").read_text(encoding="utf-8"), end="")
    print(f"\nwritten to {folder}")
    return 0
