"""The main job on the embedded defaults: `laborlm quickstart` (no YAML needed).

At this stage of LaborLM it runs the data path end to end on local Ray: synthesise a survey panel and a resume
corpus with their exact oracles, validate both (rejects file, row accounting), describe them beside CAREER's
Table 7, fit the Markov baselines on the survey's train split and score them and the oracle on its test split
with the shared metric code. Later stages add corpora, language-model training and the full comparison.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laborlm.baselines.markov import MarkovModel
from laborlm.evaluation.metrics import perplexity, target_log_probs
from laborlm.readers import RejectWriter, read_panel
from laborlm.schema import ORACLE_LOGP
from laborlm.sequences import panel_arrays
from laborlm.splits import SplitConfig, select_split
from laborlm.stats import CAREER_TABLE7, format_stats, panel_stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuickstartConfig:
    out_dir: Path = Path("runs/quickstart")  # everything the run writes goes under here
    seed: int = 0  # one seed for data and splits
    survey: str = "psid"  # survey preset: psid, nlsy79 or nlsy97
    survey_people: int = 3000  # people in the synthetic survey (PSID's real panel has ~12k)
    resume_people: int = 20000  # people in the synthetic resume corpus
    workers: int = 2  # Ray Data CPU workers for generation


def run_quickstart(cfg: QuickstartConfig) -> str:
    """Run the pipeline and return the Markdown report it also writes to ``out_dir/report.md``."""
    from laborlm.config import apply_overrides, build, to_dict
    from laborlm.synthetic import SynthConfig, generate_panel, load_preset

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    split = SplitConfig(seed=cfg.seed)
    panels = {}
    stats = {}
    for preset, people in ((cfg.survey, cfg.survey_people), ("resumes", cfg.resume_people)):
        logger.info("[1/3] generating %s (%d people) with %d Ray workers", preset, people, cfg.workers)
        synth = build(SynthConfig, apply_overrides(SynthConfig, to_dict(load_preset(preset)), [f"people={people}", f"seed={cfg.seed}"]))
        generate_panel(synth, out / preset, num_workers=cfg.workers)
        with RejectWriter(out / f"{preset}.rejects.jsonl") as rejects:
            read = read_panel(out / preset, rejects=rejects)
        c = read.counts
        logger.info("[2/3] validated %s: rows in %d = kept %d + rejected %d", preset, c.rows_in, c.rows_kept, c.rows_rejected)
        panels[preset] = read
        stats[preset] = panel_stats(read.table, read.taxonomy)

    logger.info("[3/3] fitting Markov baselines on %s train, scoring on test", cfg.survey)
    survey = panels[cfg.survey]
    train = select_split(survey.table, "train", split)
    test = select_split(survey.table, "test", split)
    targets = panel_arrays(test, survey.taxonomy).occ
    rows = [("oracle (exact DGP)", perplexity(np.asarray(test.column(ORACLE_LOGP).to_numpy(zero_copy_only=False))))]
    for order in (1, 2):
        model = MarkovModel(survey.taxonomy, order=order)
        model.fit(train)
        model.save(out / "models" / model.name)
        rows.append((f"Markov order {order}", perplexity(target_log_probs(model.log_probs(test), targets))))
    table = [f"| model | {cfg.survey} test perplexity |", "|---|---|"] + [f"| {n} | {p:.2f} |" for n, p in rows]
    report = "\n\n".join(
        [f"# LaborLM quickstart ({cfg.survey}, seed {cfg.seed})", "## Data (CAREER Table 7 rows)"]
        + [format_stats(stats, reference=CAREER_TABLE7)]
        + [f"## Next-occupation perplexity ({test.num_rows:,} test person-years)", "\n".join(table)]
    )
    (out / "report.md").write_text(report + "\n")
    return report + f"\n\nOutputs under {out}/ (panels, rejects files, models, report.md)."
