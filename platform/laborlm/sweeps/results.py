"""A sweep folder's files: their names and the collection of finished trials (a leaf module).

``sweeps.scaling`` (the driver and the trials) writes these files and ``sweeps.fit`` (the report) reads them;
both import the names from here, so neither imports the other for them (issue 17: no import cycles).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_FILE = "trials.jsonl"  # one line per finished trial: its overrides and final metrics
TRIAL_RESULT = "result.json"  # in each trial folder, written when the trial has finished
ATTEMPTS_FILE = "attempts.log"  # in each trial folder: one line per start (a resumed trial has two)
PREPARED_FILE = "prepared.json"  # the sweep's data, corpora, tokenizer and parent run


def collect_results(folder: Path) -> list[dict[str, Any]]:
    """Every finished trial's result (from the trial folders) into ``<folder>/trials.jsonl``; returns them."""
    rows = []
    for path in sorted((Path(folder) / "trials").glob(f"*/{TRIAL_RESULT}")):
        rows.append(json.loads(path.read_text()))
    (Path(folder) / RESULTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
