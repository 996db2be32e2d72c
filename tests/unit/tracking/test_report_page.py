"""``laborlm report``: a real MLflow store on SQLite (runs, metrics, artifacts, a registered model with aliases)
read back into the static page, whose tables, figures and escaping are checked by parsing the HTML."""

from __future__ import annotations

import base64
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from laborlm.cli import main
from laborlm.errors import LaborLMError
from laborlm.tracking import metric_names as mn
from laborlm.tracking.report import _inline, default_out_dir, parse_markdown, write_report_page

EXPERIMENT = "report-test"
MODEL = "laborlm-report-test"
COMPARISON_MD = """| model (test/perplexity) | psid |
|---|---:|
| Oracle (exact DGP) | 7.28 ± 0.00 |
| CAREER-small <two-stage> | 9.18 ± 0.00 |
"""
SCALING_MD = """# Scaling study tiny

Test next-occupation perplexity; the oracle's is **7.281**.

| fixed | in | A | exponent | R² (log-log) |
|---|---|---:|---:|---:|
| llama-1m | data (people) | 41.2 | 0.412 | 0.987 |
"""


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid solid-colour PNG, built by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Page(HTMLParser):
    """Tables (lists of rows of cell text, by section id), image sources and notes of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.section = ""
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.images: dict[str, str] = {}  # alt -> src
        self.notes: list[str] = []  # the page's list of what could not be read
        self._note: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_notes = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id") or ""
        elif tag == "table":
            self.tables.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.tables[self.section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images[a["alt"] or ""] = a["src"] or ""
        elif tag == "li" and self.section == "" and self._in_notes:
            self._note = []
        elif tag == "ul" and a.get("id") == "notes":
            self._in_notes = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self.section][-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "li" and self._note is not None:
            self.notes.append("".join(self._note).strip())
            self._note = None
        elif tag == "ul":
            self._in_notes = False

    def handle_data(self, data: str) -> None:
        for buffer in (self._cell, self._note):
            if buffer is not None:
                buffer.append(data)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str], dict[str, bytes]]:
    """An experiment with a benchmark run (comparison.md), a sweep parent (report/ with two PNGs) and a child
    trial, an analysis run (subgroups PNG), a training run with an unsafe name, and a model with two versions."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    files = folder / "files"
    (files / "report").mkdir(parents=True)
    (files / "subgroups").mkdir()
    images = {
        "report/scaling_data.png": png(3, 2, (200, 30, 30)),
        "report/scaling_model.png": png(2, 2, (30, 30, 200)),
        "subgroups/calibration.png": png(4, 4, (30, 160, 30)),
    }
    for path, data in images.items():
        (files / path).write_bytes(data)
    (files / "comparison.md").write_text(COMPARISON_MD, encoding="utf-8")
    (files / "report" / "scaling.md").write_text(SCALING_MD, encoding="utf-8")

    ids: dict[str, str] = {}

    def run(name: str, tags: dict[str, str], metrics: dict[str, float]) -> str:
        run_id = client.create_run(exp, run_name=name, tags=tags).info.run_id
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        ids[name] = run_id
        return run_id

    bench = run(
        "benchmark-careers-abc123", {}, {mn.TEST_PERPLEXITY: 9.1834, mn.TEST_ORACLE_PERPLEXITY: 7.2801}
    )
    client.log_artifact(bench, str(files / "comparison.md"))
    client.set_terminated(bench)
    sweep = run("sweep-tiny", {"laborlm.kind": "sweep"}, {mn.TEST_ORACLE_PERPLEXITY: 7.2801})
    client.log_artifacts(sweep, str(files / "report"), "report")
    client.set_terminated(sweep)
    run("trial-00001", {"laborlm.kind": "train", "mlflow.parentRunId": sweep}, {mn.TEST_PERPLEXITY: 11.5})
    analysis = run("analyze-subgroups-f00d00", {"laborlm.analysis": "subgroups"}, {})
    client.log_artifact(analysis, str(files / "subgroups" / "calibration.png"), "subgroups")
    client.set_terminated(analysis, "FAILED")
    train = run(
        "train-<script>alert(1)</script>",
        {"laborlm.kind": "train"},
        {mn.TRAIN_LOSS: 2.5, mn.VALID_LOSS: 2.75, mn.TEST_PERPLEXITY: 250.79},
    )
    client.log_artifact(train, str(files / "comparison.md"), "model")  # a saved model's folder is never read

    client.create_registered_model(MODEL, description="the <best> model")
    for run_id in (bench, train):
        client.create_model_version(
            MODEL, source=f"{client.get_run(run_id).info.artifact_uri}/model", run_id=run_id
        )
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "candidate", "1")
    return uri, ids, images


@pytest.fixture(scope="module")
def page(
    store: tuple[str, dict[str, str], dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Page]:
    uri = store[0]
    path = write_report_page(EXPERIMENT, uri, tmp_path_factory.mktemp("page"))
    assert path.name == "index.html"
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def test_runs_table(page: tuple[str, Page]) -> None:
    _, parsed = page
    [table] = parsed.tables["runs"]
    header, *rows = table
    assert header[:5] == ["run", "kind", "status", "started", "parent"]
    # Only metrics some run logged are columns, in the fixed order.
    assert header[5:] == [mn.TEST_PERPLEXITY, mn.TEST_ORACLE_PERPLEXITY, mn.VALID_LOSS, mn.TRAIN_LOSS]
    by_name = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert set(by_name) == {
        "benchmark-careers-abc123",
        "sweep-tiny",
        "trial-00001",
        "analyze-subgroups-f00d00",
        "train-<script>alert(1)</script>",
    }
    bench = by_name["benchmark-careers-abc123"]
    assert (bench[mn.TEST_PERPLEXITY], bench[mn.TEST_ORACLE_PERPLEXITY], bench["status"]) == (
        "9.1834",
        "7.2801",
        "FINISHED",
    )
    assert by_name["trial-00001"]["parent"] == "sweep-tiny" and by_name["trial-00001"]["kind"] == "train"
    assert by_name["sweep-tiny"]["kind"] == "sweep"
    assert by_name["analyze-subgroups-f00d00"]["kind"] == "analysis (subgroups)"
    assert by_name["analyze-subgroups-f00d00"]["status"] == "FAILED"
    train = by_name["train-<script>alert(1)</script>"]
    assert (train[mn.TRAIN_LOSS], train[mn.VALID_LOSS], train[mn.TEST_PERPLEXITY]) == (
        "2.5",
        "2.75",
        "250.79",
    )
    assert bench["started"].endswith("UTC")


def test_text_is_escaped(page: tuple[str, Page]) -> None:
    text, _ = page
    assert "<script>" not in text
    assert "train-&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "CAREER-small &lt;two-stage&gt;" in text
    assert "the &lt;best&gt; model" in text


def test_comparison_tables(page: tuple[str, Page]) -> None:
    _, parsed = page
    # One comparison.md: the copy under the training run's model/ folder is not read.
    [table] = parsed.tables["comparisons"]
    assert table == [
        ["model (test/perplexity)", "psid"],
        ["Oracle (exact DGP)", "7.28 ± 0.00"],
        ["CAREER-small <two-stage>", "9.18 ± 0.00"],
    ]


def test_scaling_report_embeds_plots(
    page: tuple[str, Page], store: tuple[str, dict[str, str], dict[str, bytes]]
) -> None:
    text, parsed = page
    [table] = parsed.tables["scaling"]
    assert table[1] == ["llama-1m", "data (people)", "41.2", "0.412", "0.987"]
    assert "<strong>7.281</strong>" in text
    images = store[2]
    for path in ("report/scaling_data.png", "report/scaling_model.png", "subgroups/calibration.png"):
        src = parsed.images[path]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == images[path]


def test_registered_models(
    page: tuple[str, Page], store: tuple[str, dict[str, str], dict[str, bytes]]
) -> None:
    text, parsed = page
    assert f'data-model="{MODEL}"' in text
    assert '<code class="alias">@champion</code> &rarr; version 2' in text
    assert '<code class="alias">@candidate</code> &rarr; version 1' in text
    [table] = parsed.tables["models"]
    assert [r[:3] for r in table] == [
        ["version", "aliases", "kind"],
        ["2", "champion", ""],
        ["1", "candidate", ""],
    ]
    assert table[1][5] == "train-<script>alert(1)</script>" and table[2][5] == "benchmark-careers-abc123"
    # A file store has no UI address: the page says how to start one.
    assert "mlflow ui --backend-store-uri sqlite:///" in text


def test_cli_prints_the_path(
    store: tuple[str, dict[str, str], dict[str, bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])  # no --tracking-uri: the environment's
    assert main(["-q", "report", "--experiment", EXPERIMENT, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "out" / "index.html") and Path(out).is_file()


def test_errors(
    store: tuple[str, dict[str, str], dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(LaborLMError, match="no MLflow tracking URI"):
        write_report_page(EXPERIMENT)
    with pytest.raises(LaborLMError, match=f"no MLflow experiment named 'nope'.*{EXPERIMENT}"):
        write_report_page("nope", store[0])
    assert main(["-q", "report", "--experiment", EXPERIMENT]) == 2
    assert "laborlm: error: no MLflow tracking URI" in capsys.readouterr().err


def test_store_of_a_stopped_server(tmp_path: Path) -> None:
    """Runs logged through a loopback server (``mlflow-artifacts:`` URIs), read back from its SQLite file after
    it stopped, as ``laborlm quickstart`` leaves them: artifacts come from the ``mlartifacts`` folder beside the
    database; a run whose folder is gone is still listed, and the page says why its artifacts are missing."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("served", artifact_location="mlflow-artifacts:/7")
    kept = client.create_run(exp, run_name="benchmark-kept").info.run_id
    client.create_run(exp, run_name="benchmark-lost")
    folder = tmp_path / "mlartifacts" / "7" / kept / "artifacts"
    folder.mkdir(parents=True)
    (folder / "comparison.md").write_text(COMPARISON_MD, encoding="utf-8")

    parsed = Page(write_report_page("served", uri, tmp_path / "page").read_text(encoding="utf-8"))
    assert {r[0] for r in parsed.tables["runs"][0][1:]} == {"benchmark-lost", "benchmark-kept"}
    assert parsed.tables["comparisons"][0][2] == ["CAREER-small <two-stage>", "9.18 ± 0.00"]
    [note] = parsed.notes
    assert (
        note.startswith("Run benchmark-lost: artifacts not read:")
        and "pass that server's http:// URI" in note
    )


def test_inline_markup_is_added_after_escaping() -> None:
    assert str(_inline("**7.28** `a<b>` _301 s on this machine_ train_loss <i>x</i>")) == (
        "<strong>7.28</strong> <code>a&lt;b&gt;</code> <em>301 s on this machine</em> train_loss &lt;i&gt;x&lt;/i&gt;"
    )


def test_parse_markdown_and_out_dir() -> None:
    [heading, para, table] = parse_markdown(
        "## Title\n\nSome **bold** text\non two lines.\n\n| a | b \\| c |\n|:--|--:|\n| 1 | 2 |\n| 3 |\n"
    )
    assert (heading.kind, heading.text, heading.level) == ("heading", "Title", 4)
    assert (para.kind, para.text) == ("paragraph", "Some **bold** text on two lines.")
    assert (table.header, table.rows, table.align) == (["a", "b | c"], [["1", "2"], ["3"]], ["left", "right"])
    assert default_out_dir("team/laborlm") == Path("runs/report/team_laborlm")
