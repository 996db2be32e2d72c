"""A static, self-contained HTML page of one MLflow experiment: ``laborlm report --experiment NAME``.

    laborlm report --experiment laborlm --tracking-uri http://127.0.0.1:5000     # runs/report/laborlm/index.html

The page is what a reader without access to the tracking server needs: every run (name, ``laborlm.kind`` tag,
status, start time, the key metrics), the comparison tables benchmark runs logged (``comparison.md``), the
scaling-law report of sweep runs (``report/scaling.md`` and its plots), the figures of analysis runs, and the
registered models with their aliases and versions, plus a link to the MLflow UI. Everything is read through
``MlflowClient`` (any tracking URI: a server, or a ``sqlite:///`` file); images are embedded as base64 data
URIs, so the one file can be mailed, attached to an issue or served from anywhere. Every piece of text from
MLflow (run names, tags, Markdown cells) is HTML-escaped by the template (Jinja2 autoescaping,
``templates/report.html.j2``).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from laborlm.errors import LaborLMError
from laborlm.tracking import metric_names as mn
from laborlm.tracking.server import ARTIFACTS_DIR

logger = logging.getLogger(__name__)

KIND_TAG = "laborlm.kind"
ANALYSIS_TAG = "laborlm.analysis"  # set by `laborlm analyze` runs (forecast, wages, subgroups, rationale)
PARENT_TAG = "mlflow.parentRunId"
# Columns of the runs table, in this order; a column shows only when some run logged it.
KEY_METRICS = (
    mn.TEST_PERPLEXITY,
    mn.TEST_ORACLE_PERPLEXITY,
    mn.TEST_ORACLE_GAP,
    mn.TEST_STAY_AUC,
    mn.VALID_OCCUPATION_PERPLEXITY,
    mn.VALID_LOSS,
    mn.VALID_PERPLEXITY,
    mn.TRAIN_LOSS,
)
COMPARISON_FILE = "comparison.md"
SCALING_DIR, SCALING_FILE = "report", "scaling.md"
ANALYSIS_PATH_PARTS = ("analysis", "subgroup")  # a PNG under a folder named with one is an analysis figure
SKIP_DIRS = frozenset({"model", "checkpoint", "checkpoints"})  # saved weights: never a table or a figure
MAX_DEPTH = 3  # artifact folders walked below a run's root
MAX_IMAGE_BYTES = 5_000_000  # larger PNGs are named, not embedded


@dataclass
class MarkdownBlock:
    """One block of a Markdown artifact: a heading, a paragraph, a list or a table (cells are raw text)."""

    kind: str  # "heading" | "paragraph" | "list" | "table"
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    align: list[str] = field(default_factory=list)  # "left" | "right" per table column


@dataclass
class Figure:
    path: str  # artifact path inside its run
    data_uri: str | None  # None when the file was too large to embed


@dataclass
class RunRow:
    run_id: str
    name: str
    kind: str
    status: str
    start: str
    parent: str
    metrics: dict[str, float]
    url: str | None


@dataclass
class RunSection:
    """A run's rendered Markdown artifact(s) and figures (one comparison, scaling or analysis section)."""

    run: RunRow
    title: str
    blocks: list[MarkdownBlock]
    figures: list[Figure]


@dataclass
class ModelVersionRow:
    version: str
    aliases: list[str]
    status: str
    created: str
    run_name: str
    run_url: str | None
    kind: str


@dataclass
class RegisteredModelRow:
    name: str
    description: str
    aliases: dict[str, str]  # alias -> version
    versions: list[ModelVersionRow]
    url: str | None


@dataclass
class ReportPage:
    experiment: str
    experiment_id: str
    tracking_uri: str
    ui_url: str | None  # the experiment in the MLflow UI, when the tracking URI is a server
    ui_command: str | None  # how to start the UI over a file store otherwise
    generated: str
    runs: list[RunRow]
    metric_columns: list[str]
    comparisons: list[RunSection]
    scaling: list[RunSection]
    analyses: list[RunSection]
    models: list[RegisteredModelRow]
    notes: list[str]  # what could not be read, shown at the top of the page


# --- Markdown (the subset LaborLM's artifacts use: headings, paragraphs, lists, pipe tables) ---------------------


def _split_row(line: str) -> list[str]:
    """Cells of a pipe-table row; ``\\|`` is a literal bar inside a cell."""
    s = line.strip()
    s = s.removeprefix("|")
    s = s[:-1] if s.endswith("|") and not s.endswith("\\|") else s
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", s)]


def parse_markdown(text: str) -> list[MarkdownBlock]:
    """Split Markdown into blocks; inline markup (``**bold**``, ```code```) is left to ``_inline``."""
    blocks: list[MarkdownBlock] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [ln for ln in chunk.splitlines() if ln.strip()]
        if not lines:
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", lines[0])
        if heading:
            level = min(len(heading.group(1)) + 2, 6)  # the page's own h1-h3 sit above an artifact's headings
            blocks.append(MarkdownBlock("heading", text=heading.group(2), level=level))
            lines = lines[1:]
            if not lines:
                continue
        if all(ln.lstrip().startswith("|") for ln in lines):
            rule = next(
                (i for i, ln in enumerate(lines) if set(ln.strip()) <= set("|-: ") and "-" in ln), None
            )
            rows = [_split_row(ln) for i, ln in enumerate(lines) if i != rule]
            width = max(len(r) for r in rows) if rows else 0
            marks = _split_row(lines[rule]) if rule is not None else []
            align = (["right" if c.endswith(":") else "left" for c in marks] + ["left"] * width)[:width]
            header, body = (rows[0], rows[1:]) if rule is not None and rule > 0 else ([], rows)
            blocks.append(MarkdownBlock("table", header=header, rows=body, align=align))
        elif all(re.match(r"^\s*[-*]\s+", ln) for ln in lines):
            blocks.append(MarkdownBlock("list", items=[re.sub(r"^\s*[-*]\s+", "", ln) for ln in lines]))
        else:
            blocks.append(MarkdownBlock("paragraph", text=" ".join(ln.strip() for ln in lines)))
    return blocks


def _inline(text: str) -> Any:
    """Escape, then turn ``**x**``, ```x``` and ``_x_`` into <strong>, <code>, <em>: only fixed tags are added
    after escaping, so nothing from the artifact becomes markup."""
    from markupsafe import Markup, escape

    out = str(escape(text))
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"(?<!\w)_(\S(?:.*?\S)?)_(?!\w)", r"<em>\1</em>", out)
    return Markup(out)


# --- reading MLflow -------------------------------------------------------------------------------------------


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The ``--tracking-uri`` flag, else ``MLFLOW_TRACKING_URI``; never MLflow's implicit ``./mlruns``."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise LaborLMError(
            "no MLflow tracking URI: pass --tracking-uri (http://HOST:PORT or "
            "sqlite:///PATH/mlflow.db) or set MLFLOW_TRACKING_URI"
        )
    return uri


def _ui_base(uri: str) -> str | None:
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _search_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], order_by=["attributes.start_time DESC"], max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


class RunArtifacts:
    """One run's artifact files, read through the tracking client; or, for a run logged through a loopback
    ``mlflow server`` (``mlflow-artifacts:`` URIs) and read back from that server's SQLite file after it stopped
    (``laborlm quickstart`` leaves exactly that), from the server's artifact folder beside the database."""

    def __init__(self, client: Any, run: Any, tracking_uri: str, tmp: Path) -> None:
        self.client, self.run_id, self.tmp = client, str(run.info.run_id), tmp
        self.local: Path | None = None
        artifact_uri = str(run.info.artifact_uri or "")
        if artifact_uri.startswith("mlflow-artifacts:") and tracking_uri.startswith("sqlite:///"):
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            self.local = db.parent / ARTIFACTS_DIR / urlparse(artifact_uri).path.lstrip("/")
            if not self.local.is_dir():
                raise LaborLMError(
                    f"its artifacts are on an MLflow server ({artifact_uri}) and not in "
                    f"{self.local}; pass that server's http:// URI"
                )

    def _list(self, path: str | None) -> list[tuple[str, bool, int]]:
        if self.local is None:
            infos = self.client.list_artifacts(self.run_id, path)
            return [(i.path, bool(i.is_dir), int(i.file_size or 0)) for i in infos]
        root = self.local
        return [
            (f.relative_to(root).as_posix(), f.is_dir(), 0 if f.is_dir() else f.stat().st_size)
            for f in sorted((root / path if path else root).iterdir())
        ]

    def files(self, path: str | None = None, depth: int = 0) -> list[tuple[str, int]]:
        """(path, size) of every file, folders walked ``MAX_DEPTH`` deep, saved-model folders skipped."""
        out: list[tuple[str, int]] = []
        for name, is_dir, size in self._list(path):
            if not is_dir:
                out.append((name, size))
            elif depth < MAX_DEPTH and name.rsplit("/", 1)[-1] not in SKIP_DIRS:
                out.extend(self.files(name, depth + 1))
        return out

    def read(self, path: str) -> bytes:
        if self.local is not None:
            return (self.local / path).read_bytes()
        dst = self.tmp / self.run_id
        dst.mkdir(exist_ok=True)
        return Path(self.client.download_artifacts(self.run_id, path, str(dst))).read_bytes()

    def figures(self, files: list[tuple[str, int]]) -> list[Figure]:
        figures = []
        for path, size in sorted(files):
            if size > MAX_IMAGE_BYTES:
                logger.warning("run %s: %s is %d bytes; named, not embedded", self.run_id, path, size)
                figures.append(Figure(path, None))
            else:
                data = base64.b64encode(self.read(path)).decode("ascii")
                figures.append(Figure(path, f"data:image/png;base64,{data}"))
        return figures


def _is_analysis_png(path: str) -> bool:
    return any(word in folder for folder in path.lower().split("/")[:-1] for word in ANALYSIS_PATH_PARTS)


def collect(experiment: str, tracking_uri: str | None = None) -> ReportPage:
    """Read one experiment's runs, artifacts and the registry into a ``ReportPage``.

    Raises:
        LaborLMError: no tracking URI, or no experiment of that name in the store.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        known = sorted(e.name for e in client.search_experiments())
        raise LaborLMError(
            f"{uri}: no MLflow experiment named {experiment!r} (experiments: {', '.join(known) or 'none'})"
        )
    ui = _ui_base(uri)

    def run_url(run_id: str) -> str | None:
        return f"{ui}/#/experiments/{exp.experiment_id}/runs/{run_id}" if ui else None

    runs = _search_runs(client, exp.experiment_id)
    names = {r.info.run_id: r.info.run_name or r.info.run_id for r in runs}
    rows: list[RunRow] = []
    comparisons: list[RunSection] = []
    scaling: list[RunSection] = []
    analyses: list[RunSection] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="laborlm-report-") as tmp_name:
        tmp = Path(tmp_name)
        for r in runs:
            tags = r.data.tags
            kind = tags.get(KIND_TAG) or (f"analysis ({tags[ANALYSIS_TAG]})" if ANALYSIS_TAG in tags else "")
            parent = tags.get(PARENT_TAG, "")
            row = RunRow(
                r.info.run_id,
                names[r.info.run_id],
                kind,
                r.info.status,
                _when(r.info.start_time),
                names.get(parent, parent),
                {k: v for k, v in r.data.metrics.items() if k in KEY_METRICS},
                run_url(r.info.run_id),
            )
            rows.append(row)
            try:
                _read_artifacts(RunArtifacts(client, r, uri, tmp), row, tags, comparisons, scaling, analyses)
            except (LaborLMError, MlflowException, OSError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                logger.warning("run %s (%s): artifacts not read: %s", row.name, row.run_id, reason)
                notes.append(f"Run {row.name}: artifacts not read: {reason}")
    models = _registered_models(client, names, run_url, ui)
    present = {k for row in rows for k in row.metrics}
    logger.info(
        "experiment %s: %d runs, %d comparison tables, %d scaling reports, %d analysis runs, %d models",
        experiment,
        len(rows),
        len(comparisons),
        len(scaling),
        len(analyses),
        len(models),
    )
    return ReportPage(
        experiment=experiment,
        experiment_id=exp.experiment_id,
        tracking_uri=uri,
        ui_url=f"{ui}/#/experiments/{exp.experiment_id}" if ui else None,
        ui_command=None if ui else f"mlflow ui --backend-store-uri {uri}",
        generated=datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        runs=rows,
        metric_columns=[k for k in KEY_METRICS if k in present],
        comparisons=comparisons,
        scaling=scaling,
        analyses=analyses,
        models=models,
        notes=notes,
    )


def _read_artifacts(
    artifacts: RunArtifacts,
    row: RunRow,
    tags: dict[str, str],
    comparisons: list[RunSection],
    scaling: list[RunSection],
    analyses: list[RunSection],
) -> None:
    """Add a run's comparison tables, scaling report and analysis figures to the page's sections."""
    files = artifacts.files()
    for path, _ in files:
        if path.rsplit("/", 1)[-1] == COMPARISON_FILE:
            text = artifacts.read(path).decode("utf-8")
            comparisons.append(RunSection(row, path, parse_markdown(text), []))
    scaling_md = f"{SCALING_DIR}/{SCALING_FILE}"
    if any(p == scaling_md for p, _ in files):
        pngs = [(p, s) for p, s in files if p.startswith(SCALING_DIR + "/") and p.lower().endswith(".png")]
        text = artifacts.read(scaling_md).decode("utf-8")
        scaling.append(RunSection(row, scaling_md, parse_markdown(text), artifacts.figures(pngs)))
    is_analysis = tags.get(KIND_TAG) == "analysis" or ANALYSIS_TAG in tags
    pngs = [(p, s) for p, s in files if p.lower().endswith(".png") and (is_analysis or _is_analysis_png(p))]
    if pngs:
        analyses.append(RunSection(row, row.kind or "analysis", [], artifacts.figures(pngs)))


def _registered_models(
    client: Any, run_names: dict[str, str], run_url: Callable[[str], str | None], ui: str | None
) -> list[RegisteredModelRow]:
    """Every registered model of the store (the registry is shared by all experiments), newest version first.
    A version whose run belongs to this experiment links to it."""
    from urllib.parse import quote

    out = []
    for rm in sorted(_search_registered_models(client), key=lambda m: m.name):
        aliases = dict(getattr(rm, "aliases", None) or {})
        versions = []
        name_filter = f"name = '{rm.name}'" if "'" not in rm.name else f'name = "{rm.name}"'
        for v in sorted(client.search_model_versions(name_filter), key=lambda v: -int(v.version)):
            in_exp = v.run_id in run_names
            versions.append(
                ModelVersionRow(
                    version=str(v.version),
                    aliases=sorted(a for a, ver in aliases.items() if str(ver) == str(v.version)),
                    status=str(v.status),
                    created=_when(v.creation_timestamp),
                    run_name=run_names[v.run_id] if in_exp else (v.run_id or ""),
                    run_url=run_url(v.run_id) if in_exp else None,
                    kind=(v.tags or {}).get(KIND_TAG, ""),
                )
            )
        out.append(
            RegisteredModelRow(
                rm.name,
                rm.description or "",
                {a: str(ver) for a, ver in sorted(aliases.items())},
                versions,
                f"{ui}/#/models/{quote(rm.name, safe='')}" if ui else None,
            )
        )
    return out


def _search_registered_models(client: Any) -> list[Any]:
    models: list[Any] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            return models


# --- rendering ------------------------------------------------------------------------------------------------

TEMPLATE = "report.html.j2"  # in laborlm/tracking/templates/ (package data)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def render(page: ReportPage) -> str:
    """The page as one HTML string; autoescaping covers every value, ``inline`` adds only fixed tags."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("laborlm.tracking", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(page=page, fmt=_fmt, inline=_inline)


def default_out_dir(experiment: str) -> Path:
    """``runs/report/<experiment>``, the name made safe for a folder (``/`` in Databricks-style names)."""
    return Path("runs") / "report" / (re.sub(r"[^A-Za-z0-9_.-]", "_", experiment).strip(".") or "experiment")


def write_report_page(experiment: str, tracking_uri: str | None = None, out_dir: Path | None = None) -> Path:
    """Read the experiment from MLflow and write ``out_dir/index.html``; return its path."""
    page = collect(experiment, tracking_uri)
    out = Path(out_dir) if out_dir is not None else default_out_dir(experiment)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(render(page), encoding="utf-8")
    logger.info("report of experiment %s written to %s", experiment, path)
    return path
