"""Scaling-law fits over a sweep's finished trials: ``laborlm sweep report <sweep folder>``.

As in Kaplan et al. and Chinchilla, the law is fitted to the test cross-entropy (log perplexity, nats per
person-year), with the oracle's cross-entropy as the irreducible term: we know it exactly, so it is not
fitted:

    ln ppl(D) = ln ppl_oracle + A * D^(-alpha)   per model size, D = pretraining people (data volume)
    ln ppl(N) = ln ppl_oracle + B * N^(-beta)    per data volume, N = non-embedding parameters (Kaplan et al.)

fitted as straight lines of log(ln ppl - ln ppl_oracle) on log D (log N), over seed means. From the per-size
data laws the report finds where a smaller model with more data matches a larger one: the data volume D* at
which the smaller model's curve reaches the larger model's perplexity, and the grid cells where that already
happens. It writes ``scaling.md``, ``scaling.json``, ``scaling_data.png``, ``scaling_model.png`` and a
self-contained ``scaling.html`` into the sweep folder, and logs them (and the exponents) to the sweep's MLflow
parent run.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laborlm.errors import LaborLMError
from laborlm.sweeps.results import PREPARED_FILE, collect_results
from laborlm.tracking import metric_names as mn

logger = logging.getLogger(__name__)

PPL = mn.TEST_PERPLEXITY
ORACLE = "test/oracle_perplexity"
D_KEY = mn.DATA_PRETRAIN_PEOPLE
N_KEY = mn.MODEL_NON_EMBEDDING_PARAMETERS


@dataclass(frozen=True)
class PowerLaw:
    """``ln ppl = irreducible + coefficient * x^(-exponent)``; ``irreducible`` is the oracle's ln perplexity."""

    label: str  # the fixed variable, e.g. "llama-1m" or "8000 people"
    variable: str  # "data" or "parameters"
    irreducible: float  # nats
    coefficient: float
    exponent: float
    r2: float  # of the log-log line
    points: list[tuple[float, float]]  # (x, perplexity)

    def predict(self, x: float | np.ndarray) -> float | np.ndarray:
        """Perplexity at ``x``."""
        return np.exp(self.irreducible + self.coefficient * np.power(x, -self.exponent))

    def solve(self, ppl: float) -> float:
        """The x at which the law reaches perplexity ``ppl`` (inf when it never does)."""
        excess = math.log(ppl) - self.irreducible
        if excess <= 0 or self.exponent <= 0:
            return math.inf
        return float((self.coefficient / excess) ** (1.0 / self.exponent))


def fit_power_law(
    x: np.ndarray, ppl: np.ndarray, oracle_ppl: float, label: str, variable: str
) -> PowerLaw | None:
    """Least squares of log(ln ppl - ln oracle) on log x; None with fewer than 2 distinct x above the oracle."""
    irreducible = math.log(oracle_ppl)
    keep = (ppl > oracle_ppl) & (x > 0)
    x, ppl = x[keep], ppl[keep]
    if len(np.unique(x)) < 2:
        return None
    lx, ly = np.log(x), np.log(np.log(ppl) - irreducible)
    slope, intercept = np.polyfit(lx, ly, 1)
    fitted = intercept + slope * lx
    ss_res, ss_tot = float(((ly - fitted) ** 2).sum()), float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return PowerLaw(
        label,
        variable,
        irreducible,
        float(math.exp(intercept)),
        float(-slope),
        r2,
        [(float(a), float(b)) for a, b in zip(x, ppl, strict=True)],
    )


def _seed_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, data fraction): perplexities averaged over seeds (the count kept as ``seeds``)."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["data_fraction"])].append(r)
    out = []
    for (model, fraction), rs in sorted(groups.items(), key=lambda kv: (kv[1][0][N_KEY], kv[0][1])):
        out.append(
            {
                "model": model,
                "data_fraction": fraction,
                D_KEY: rs[0][D_KEY],
                N_KEY: rs[0][N_KEY],
                PPL: float(np.mean([r[PPL] for r in rs])),
                "ppl_sd": float(np.std([r[PPL] for r in rs])),
                mn.TRAIN_FLOPS: float(np.mean([r[mn.TRAIN_FLOPS] for r in rs])),
                "seeds": len(rs),
            }
        )
    return out


def analyse(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fits, matches and the table's rows of a sweep's results (``trials.jsonl`` lines)."""
    rows = [r for r in rows if PPL in r and D_KEY in r and N_KEY in r]
    if not rows:
        raise LaborLMError("no finished trial with a test perplexity, data volume and parameter count")
    oracle_values = [r[ORACLE] for r in rows if ORACLE in r]
    oracle = float(np.mean(oracle_values)) if oracle_values else 1.0  # 1.0: no oracle, a perfect predictor
    cells = _seed_means(rows)
    models = sorted(
        {c["model"] for c in cells}, key=lambda m: next(c[N_KEY] for c in cells if c["model"] == m)
    )
    fractions = sorted({c["data_fraction"] for c in cells})

    data_laws: dict[str, PowerLaw] = {}
    for m in models:
        cs = [c for c in cells if c["model"] == m]
        law = fit_power_law(
            np.array([c[D_KEY] for c in cs], float), np.array([c[PPL] for c in cs]), oracle, m, "data"
        )
        if law is not None:
            data_laws[m] = law
    size_laws: dict[float, PowerLaw] = {}
    for f in fractions:
        cs = [c for c in cells if c["data_fraction"] == f]
        law = fit_power_law(
            np.array([c[N_KEY] for c in cs], float),
            np.array([c[PPL] for c in cs]),
            oracle,
            f"{cs[0][D_KEY]} people",
            "parameters",
        )
        if law is not None:
            size_laws[f] = law

    matches = []  # a smaller model's data volume that matches a larger model's perplexity
    for i, small in enumerate(models):
        for large in models[i + 1 :]:
            for c in (c for c in cells if c["model"] == large):
                observed = [
                    s for s in cells if s["model"] == small and s[D_KEY] > c[D_KEY] and s[PPL] <= c[PPL]
                ]
                needed = data_laws[small].solve(c[PPL]) if small in data_laws else math.nan
                matches.append(
                    {
                        "smaller": small,
                        "larger": large,
                        "larger_people": c[D_KEY],
                        "larger_ppl": c[PPL],
                        "smaller_people_needed": needed,
                        "data_ratio": needed / c[D_KEY] if c[D_KEY] and math.isfinite(needed) else math.inf,
                        "observed": [(s[D_KEY], s[PPL]) for s in observed],
                    }
                )
    return {
        "oracle_perplexity": oracle,
        "oracle_known": bool(oracle_values),
        "rows": rows,
        "cells": cells,
        "models": models,
        "fractions": fractions,
        "data_laws": {m: asdict(law) for m, law in data_laws.items()},
        "size_laws": {str(f): asdict(law) for f, law in size_laws.items()},
        "matches": matches,
        "_laws": (data_laws, size_laws),
    }


def _fmt(ppl: float) -> str:
    """Perplexities of undertrained language models run to 1e10 and beyond: keep them readable."""
    return f"{ppl:.2f}" if ppl < 1e4 else f"{ppl:.3g}"


def to_markdown(result: dict[str, Any], title: str) -> str:
    cells, models, fractions = result["cells"], result["models"], result["fractions"]
    people = {f: next(c[D_KEY] for c in cells if c["data_fraction"] == f) for f in fractions}
    lines = [
        f"# Scaling study {title}",
        "",
        (
            f"Test next-occupation perplexity (mean over seeds); the oracle's is "
            f"**{result['oracle_perplexity']:.3f}** (the irreducible term of every fit)."
            if result.get("oracle_known", True)
            else "Test next-occupation perplexity (mean over seeds). The survey has no oracle (a real panel), so the "
            "fits take a perfect predictor's perplexity, 1, as the irreducible term."
        ),
        "",
        "| model (non-embedding params) | "
        + " | ".join(f"{people[f]:,} people ({f:g})" for f in fractions)
        + " |",
        "|---|" + "---:|" * len(fractions),
    ]
    for m in models:
        row = [f"{m} ({next(c[N_KEY] for c in cells if c['model'] == m):,})"]
        for f in fractions:
            c = next((c for c in cells if c["model"] == m and c["data_fraction"] == f), None)
            row.append(
                "-" if c is None else _fmt(c[PPL]) + (f" ± {_fmt(c['ppl_sd'])}" if c["seeds"] > 1 else "")
            )
        lines.append("| " + " | ".join(row) + " |")
    data_laws, size_laws = result["_laws"]
    lines += [
        "",
        "Power laws in cross-entropy, `ln ppl = ln ppl_oracle + A x^-alpha` (nats per person-year):",
        "",
        "| fixed | in | A | exponent | R² (log-log) |",
        "|---|---|---:|---:|---:|",
    ]
    for law in [*data_laws.values(), *size_laws.values()]:
        lines.append(
            f"| {law.label} | {'data (people)' if law.variable == 'data' else 'parameters'} | "
            f"{law.coefficient:.3g} | {law.exponent:.3f} | {law.r2:.3f} |"
        )
    if result["matches"]:
        lines += [
            "",
            "Where a smaller model with more data matches a larger one:",
            "",
            "| smaller | larger at (people, ppl) | people the smaller needs (fit) | ratio | seen in the grid |",
            "|---|---|---:|---:|---|",
        ]
        for mt in result["matches"]:
            need = mt["smaller_people_needed"]
            seen = ", ".join(f"{d:,} people: {_fmt(p)}" for d, p in mt["observed"]) or "no"
            lines.append(
                f"| {mt['smaller']} | {mt['larger']} ({mt['larger_people']:,}, {_fmt(mt['larger_ppl'])}) | "
                f"{need:,.0f} | {mt['data_ratio']:.2f}x | {seen} |"
                if math.isfinite(need)
                else f"| {mt['smaller']} | {mt['larger']} ({mt['larger_people']:,}, {_fmt(mt['larger_ppl'])}) | "
                f"never (fit) | - | {seen} |"
            )
    lines += [
        "",
        "Trials:",
        "",
        "| trial | overrides | valid occupation ppl | test ppl | tokens | FLOPs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in sorted(result["rows"], key=lambda r: r[PPL]):
        lines.append(
            f"| {r['trial']} | {' '.join(r['overrides'])} | {_fmt(r.get(mn.VALID_OCCUPATION_PERPLEXITY, math.nan))} "
            f"| {_fmt(r[PPL])} | {r[mn.TRAIN_TOKENS]:,.0f} | {r[mn.TRAIN_FLOPS]:.2e} |"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], folder: Path) -> list[Path]:
    """Perplexity against data volume (one line per model) and against size (one per data volume), log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data_laws, size_laws = result["_laws"]
    oracle, cells = result["oracle_perplexity"], result["cells"]
    paths = []
    for variable, key, groups, laws, name in (
        ("pretraining people (data volume)", D_KEY, result["models"], data_laws, "scaling_data.png"),
        ("non-embedding parameters", N_KEY, result["fractions"], size_laws, "scaling_model.png"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
        for g in groups:
            cs = [c for c in cells if (c["model"] if key == D_KEY else c["data_fraction"]) == g]
            xs, ys = [c[key] for c in cs], [c[PPL] for c in cs]
            label = str(g) if key == D_KEY else f"{cs[0][D_KEY]:,} people"
            line = ax.plot(xs, ys, "o", label=label)[0]
            law = laws.get(g)
            if law is not None:
                grid = np.geomspace(min(xs), max(xs) * 3, 50)
                ax.plot(
                    grid,
                    law.predict(grid),
                    "-",
                    color=line.get_color(),
                    alpha=0.7,
                    label=f"  fit: exponent {law.exponent:.2f}",
                )
        ax.axhline(oracle, color="black", linestyle="--", linewidth=1, label=f"oracle {oracle:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(variable)
        ax.set_ylabel("test perplexity (next occupation)")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        path = folder / name
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def to_html(markdown: str, images: list[Path], title: str) -> str:
    """A self-contained page (images inline), readable in a browser and in MLflow's artifact viewer."""
    body = []
    for block in markdown.strip().split("\n\n"):
        lines = block.splitlines()
        if lines[0].startswith("# "):
            body.append(f"<h1>{html.escape(lines[0][2:])}</h1>")
        elif lines[0].startswith("|"):
            rows = [ln.strip("|").split("|") for ln in lines if not set(ln) <= set("|-: ")]
            head, *rest = rows
            body.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in rest
                )
                + "</table>"
            )
        else:
            body.append(f"<p>{html.escape(block).replace('**', '')}</p>")
    for img in images:
        data = base64.b64encode(img.read_bytes()).decode()
        body.append(
            f'<figure><img alt="{img.stem}" src="data:image/png;base64,{data}"><figcaption>{img.name}'
            "</figcaption></figure>"
        )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(folder: Path) -> Path:
    """Fit, tabulate and plot a sweep folder's finished trials; log the outputs to its MLflow parent run."""
    folder = Path(folder).resolve()
    if not (folder / PREPARED_FILE).is_file():
        raise LaborLMError(
            f"{folder}: not a sweep folder (no {PREPARED_FILE}; run `laborlm sweep CONFIG` first)"
        )
    rows = collect_results(folder)
    result = analyse(rows)
    md = to_markdown(result, folder.name)
    images = plot(result, folder)
    (folder / "scaling.md").write_text(md)
    (folder / "scaling.json").write_text(
        json.dumps({k: v for k, v in result.items() if not k.startswith("_")}, indent=2, default=str)
    )
    (folder / "scaling.html").write_text(to_html(md, images, f"LaborLM scaling study {folder.name}"))
    prepared = json.loads((folder / PREPARED_FILE).read_text())
    if prepared.get("parent_run_id") and prepared.get("tracking_uri"):
        from laborlm.tracking.mlflow_tracker import AttachedRun

        run = AttachedRun(prepared["tracking_uri"], prepared["parent_run_id"])
        for name in ("scaling.md", "scaling.json", "scaling.html", *(p.name for p in images), "trials.jsonl"):
            run.log_artifact(folder / name, "report")
        data_laws, size_laws = result["_laws"]
        run.log_metrics(
            {
                "sweep/trials_finished": len(rows),
                ORACLE: result["oracle_perplexity"],
                **{f"fit/data_exponent/{m}": law.exponent for m, law in data_laws.items()},
                **{f"fit/size_exponent/d{f:g}": law.exponent for f, law in size_laws.items()},
            }
        )
    logger.info("scaling report: %s", folder / "scaling.html")
    return folder / "scaling.md"
