"""Where a workflow's survey and resume panels come from: a synthetic preset generated here, or a user's panel.

Every workflow that trains and compares models (``laborlm quickstart``, ``benchmark careers``, ``benchmark
llm``, ``sweep``) takes its data the same two ways: a synthetic preset name (``survey=psid``; generated
deterministically under ``<out>/data``) or the path of a canonical panel (``survey_panel=runs/nlsw``: a
``laborlm data import`` folder, a Parquet/CSV file or folder, CAREER split files). This module is the one
home of that step, so the checks and their messages are the same everywhere:

* :func:`source_problems` is the cheap check a config's ``__post_init__`` runs (no data read): a preset name
  where a path is meant or the reverse, a path that does not exist or is not a panel. It runs when the
  config is loaded, so before the command line starts Ray or any MLflow run is created.
* :func:`prepare_panels` then produces the panels: generates the presets, or reads the user's panels and
  checks that the survey has persons in its train and test splits and (where the caller needs it) that the
  resume panel's codes are the survey's. It writes nothing for user panels.
* :func:`generate_preset_panel` and :func:`first_people` are the shared generation and test-subset steps.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from laborlm import schema
from laborlm.config import apply_overrides, build, config_hash, to_dict
from laborlm.errors import ConfigError, InputDataError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import PanelRead, read_panel
from laborlm.splits import SplitConfig, select_split

logger = logging.getLogger(__name__)

SURVEY_PRESETS: tuple[str, ...] = (
    "psid",
    "nlsy79",
    "nlsy97",
)  # synthetic surveys (``resumes`` is the corpus)
RESUMES = "resumes"  # the synthetic resume corpus preset
_PANEL_SUFFIXES = (".csv", ".parquet", ".pq")


def generate_preset_panel(preset: str, people: int | None, seed: int, out: Path, workers: int = 0) -> Path:
    """The synthetic panel of ``preset`` under ``out/data/<preset>-<config hash>``; reused when already there.

    Generation is deterministic in (preset, people, seed), so every workflow that asks for the same panel (the
    quickstart and the benchmarks) shares one folder and one person split.
    """
    from laborlm.synthetic import SynthConfig, generate_panel, load_preset

    overrides = [f"seed={seed}"] + ([f"people={people}"] if people is not None else [])
    synth = build(SynthConfig, apply_overrides(SynthConfig, to_dict(load_preset(preset)), overrides))
    folder = out / "data" / f"{preset}-{config_hash(synth, 8)}"
    if not (folder / "synth.yaml").exists():
        generate_panel(synth, folder, num_workers=workers or None)
    return folder


def first_people(panel: pa.Table, n: int) -> pa.Table:
    """The rows of the first ``n`` persons by id: a deterministic subset that every model is scored on."""
    keep = sorted(set(panel.column(schema.PERSON_ID).to_pylist()))[:n]
    return panel.filter(pc.is_in(panel.column(schema.PERSON_ID), value_set=pa.array(keep, pa.string())))


def panel_name(panel: Path) -> str:
    """A user panel's name (table column, corpus folder): its folder's name or a file's stem, in characters
    MLflow keys accept."""
    name = panel.stem if panel.suffix.lower() in _PANEL_SUFFIXES else panel.name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "panel"


def looks_like_path(text: str) -> bool:
    """Whether a value given for a preset name is meant as a path (a separator, a dot, a data suffix, or it
    exists)."""
    return (
        "/" in text
        or "\\" in text
        or text.startswith(".")
        or Path(text).suffix.lower() in _PANEL_SUFFIXES
        or Path(text).exists()
    )


def preset_problems(key: str, preset: str, *, known: tuple[str, ...], path_key: str) -> list[str]:
    """A config field that names a synthetic preset: a path there, or an unknown name, is a problem."""
    if preset in known:
        return []
    if looks_like_path(preset):
        return [
            (
                f"{key}: {preset!r} is a path, not a synthetic preset ({', '.join(known)}); give a panel as "
                f"{path_key}={preset}"
            )
        ]
    return [
        (
            f"{key}: unknown synthetic preset {preset!r}; known: {', '.join(known)} (a panel of your own: "
            f"{path_key}=DIR)"
        )
    ]


def panel_problems(key: str, path: Path | None, *, preset_hint: str) -> list[str]:
    """A config field that names a user's panel: cheap checks, no data read (``source_problems``' half).

    Args:
        preset_hint: how to ask for the synthetic data instead (``"survey=psid"``, ``"leave it unset"``), for
            the message when a preset name is given as a path.
    """
    if path is None:
        return []
    text = str(path)
    if not path.exists():
        if text in (*SURVEY_PRESETS, RESUMES):
            return [
                f"{key}: {text!r} is a synthetic preset name, not a panel (there is no {text}); {preset_hint}"
            ]
        return [f"{key}: {path}: no such file or folder"]
    if path.is_file():
        if path.suffix.lower() not in _PANEL_SUFFIXES:
            return [
                (
                    f"{key}: {path}: not a panel (expected a .csv or .parquet file, a folder of them, a `laborlm "
                    "data import` folder or CAREER split files)"
                )
            ]
        return []
    from laborlm.readers.career_files import is_career_folder

    if is_career_folder(path):
        return []
    if not any(
        p.is_file()
        and p.suffix.lower() in _PANEL_SUFFIXES
        and p.name != "taxonomy.csv"
        and not p.name.startswith((".", "_"))
        for p in path.iterdir()
    ):
        return [
            (
                f"{key}: {path}: not a panel: the folder holds no .csv/.parquet shards and no CAREER split files "
                "(make one with `laborlm data import FILE --out DIR`)"
            )
        ]
    return []


@dataclass(frozen=True)
class PreparedPanels:
    """A workflow's data: the survey it fine-tunes and scores on, and the resume panel it pretrains on.

    ``split`` is the one person split of the workflow, for persons whose panel has no split column: its
    corpora, its baselines and the test persons it scores all read it, so no step can train on a person
    another step tests on.
    """

    survey: Path  # a synthetic panel folder, or the user's panel
    survey_name: str  # the preset, or ``panel_name`` of the user's panel (table column, corpus folder name)
    survey_read: PanelRead
    resumes: Path | None  # None: no resume panel (nothing is pretrained)
    user_survey: bool  # the survey is the user's (its oracle row only where it carries oracle_logp)
    user_resumes: bool
    split: SplitConfig

    @property
    def taxonomy(self) -> Taxonomy:
        return self.survey_read.taxonomy


def prepare_panels(
    *,
    survey: str,
    survey_panel: Path | None,
    survey_people: int | None,
    resumes: bool,
    resume_panel: Path | None,
    resume_people: int | None,
    seed: int,
    out: Path,
    workers: int = 0,
    same_codes: bool = False,
) -> PreparedPanels:
    """The survey and resume panels of a workflow, from the user's paths where given, else from the presets.

    A user's panels are read and checked before the caller writes or logs anything: the survey must have
    persons in its train and test splits (the split of ``seed``, returned as ``split``), the resume panel
    persons in its train split, and with ``same_codes`` the resume panel's codes must be the survey's (CAREER
    reads codes, so a model pretrained on the resumes indexes occupations as the fine-tuned one does).

    Args:
        resumes: whether the workflow pretrains at all; False ignores ``resume_panel`` / ``resume_people``.

    Raises:
        ConfigError: a missing path, or resumes in other codes while ``same_codes``.
        InputDataError: an unreadable panel, or one without persons in a split the workflow needs.
    """
    split = SplitConfig(seed=seed)
    missing = [
        f"{key}: {p}: no such file or folder"
        for key, p in (("survey_panel", survey_panel), ("resume_panel", resume_panel))
        if p is not None and not p.exists()
    ]
    if missing:
        raise ConfigError(missing)
    if survey_panel is not None:
        path = survey_panel.resolve()
        read = read_panel(path)
        for name in ("train", "test"):
            if select_split(read.table, name, split).num_rows == 0:
                raise InputDataError(
                    str(path),
                    None,
                    "split",
                    f"no person in the {name} split (of "
                    f"{read.table.num_rows} person-years; split seed {split.seed})",
                )
        name = panel_name(path)
    else:
        path = generate_preset_panel(survey, survey_people, seed, out, workers)
        read, name = read_panel(path), survey
    resume_path: Path | None = None
    if resumes and resume_panel is not None:
        resume_path = resume_panel.resolve()
        theirs = read_panel(resume_path)
        if select_split(theirs.table, "train", split).num_rows == 0:
            raise InputDataError(str(resume_path), None, "split", "no person in the train split")
        if same_codes:
            from laborlm.models.registry import taxonomy_difference

            diff = taxonomy_difference(
                read.taxonomy, theirs.taxonomy, f"survey {path}", f"resumes {resume_path}"
            )
            if diff is not None:
                raise ConfigError(f"resume_panel: the resume panel's codes must be the survey's: {diff}")
    elif resumes:
        if same_codes and survey_panel is not None:  # checked before generating anything
            from laborlm.models.registry import taxonomy_difference

            diff = taxonomy_difference(
                read.taxonomy, Taxonomy.default(), f"survey {path}", "the synthetic resumes"
            )
            if diff is not None:
                raise ConfigError(
                    f"resume_panel: pretraining needs resumes in the survey's codes; the synthetic "
                    f"resume corpus is not: {diff}; give resume_panel=DIR or leave pretraining out"
                )
        resume_path = generate_preset_panel(RESUMES, resume_people, seed, out, workers)
    return PreparedPanels(
        path, name, read, resume_path, survey_panel is not None, resume_panel is not None, split
    )
