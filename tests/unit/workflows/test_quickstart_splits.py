"""The quickstart's corpus is split by the seed its baselines and scored test persons use (``panels.split``).

With ``seed=1`` the corpus was once split by seed 0 while CAREER, the Markov chains and the test persons used
seed 1: the LM trained on ~70% of the persons it was then scored on (measured at size small: 8.46 on the
quickstart's test persons, 9.12 on its own held-out ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laborlm.splits import SplitConfig, split_array
from laborlm.workflows.quickstart import QuickstartConfig, QuickstartData, build_corpora, prepare_data


def _panel(folder: Path, people: int = 60) -> Path:
    """A canonical panel folder in Parquet, as `laborlm data import` leaves one."""
    folder.mkdir(parents=True)
    rows = [
        (f"p{i:03d}", year, "abc"[(i + t) % 3]) for i in range(people) for t, year in enumerate((1970, 1971))
    ]
    columns = {
        "person_id": [r[0] for r in rows],
        "year": [r[1] for r in rows],
        "occupation": [r[2] for r in rows],
    }
    pq.write_table(pa.table(columns | {"source": ["survey"] * len(rows)}), folder / "part-00000.parquet")
    (folder / "taxonomy.csv").write_text("code,title\na,Analyst\nb,Baker\nc,Carpenter\n")
    return folder


@pytest.mark.parametrize("seed", [0, 1])
def test_corpus_splits_follow_the_quickstart_seed(seed: int, tmp_path: Path, ray_session: object) -> None:
    cfg = QuickstartConfig(
        seed=seed, workers=1, out_dir=tmp_path / "out", survey_panel=_panel(tmp_path / "survey")
    )
    panels = prepare_data(cfg, tmp_path / "out")
    assert panels.split == SplitConfig(seed=seed)  # what the baselines and the scored test persons read
    corpus = build_corpora(cfg, QuickstartData(panels, {}), tmp_path / "out")["survey"]

    table = pa.concat_tables(
        pq.read_table(f, columns=["person_id", "split"]) for f in corpus.glob("*.parquet")
    )
    ids = table.column("person_id").to_pylist()
    got = np.array(table.column("split").to_pylist(), dtype=object)
    assert len(ids) == 60
    assert (got == split_array(ids, SplitConfig(seed=seed))).all()
    assert not (got == split_array(ids, SplitConfig(seed=1 - seed))).all()  # the seeds split differently
