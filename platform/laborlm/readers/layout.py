"""What panel and CAREER folders hold besides the rows: the taxonomy, the source name, safe rewrites.

Both folder kinds carry a ``taxonomy.csv`` (``code,title,group``) so that they describe themselves: reading
one back gives the same taxonomy and so the same occupation indices. This module owns the rule that picks a
taxonomy when the caller names none, the default ``source`` of an input, and how a writer replaces a folder
it wrote before without ever deleting files it did not write.

A synthetic panel folder also carries ``synth.yaml``, the config it was generated with (the exact parameters
of its oracle, ``laborlm.synthetic.oracle``). Readers skip it like any other file that is not a shard. Only
``generate_panel`` owns it: ``write_panel`` refuses a synthetic folder as its destination instead of deleting
the record of how those data were made (write the rows to a new folder).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from laborlm.errors import LaborLMError
from laborlm.occupations.taxonomy import SPECIAL_STATES, Taxonomy, special_state
from laborlm.paths import remove_stale_temps, temp_sibling, write_failure

logger = logging.getLogger(__name__)

TAXONOMY_FILE = "taxonomy.csv"
SYNTH_CONFIG_FILE = "synth.yaml"  # written by laborlm.synthetic.generate_panel beside the shards it generated
OCC1990DD = "occ1990dd"
INFER = "infer"
T = TypeVar("T")


def resolve_taxonomy(
    spec: Taxonomy | str | Path | None,
    folder: Path | None,
    codes: Sequence[str],
    states: Mapping[str, str] | None = None,
) -> Taxonomy:
    """The taxonomy to validate occupations against.

    Args:
        spec: a ``Taxonomy`` (used as is); ``"occ1990dd"``; ``"infer"`` (the distinct codes of the data); any
            other string or path is a ``code,title[,group]`` CSV; None picks automatically (below).
        folder: the input folder, if the input is one; its ``taxonomy.csv`` wins when ``spec`` is None.
        codes: the distinct occupation spellings in the data.
        states: a survey's own labels of the special states (``--states``): in a taxonomy file or in the
            codes they are those states, never occupations.

    The automatic rule: the folder's ``taxonomy.csv`` if there is one; else occ1990dd, unless fewer than half
    of the distinct codes (special states aside) are occ1990dd codes. Then the data clearly use another
    scheme (O*NET-SOC in CAREER's sample, a survey's own groups) and reporting nearly every row as an
    unknown code would help nobody, so the taxonomy is inferred from the codes. The choice is logged.
    """
    if isinstance(spec, Taxonomy):
        return spec
    if spec == OCC1990DD:
        return Taxonomy.default()
    if spec == INFER:
        return Taxonomy.infer(codes, states=states)
    default = Taxonomy.default()
    if spec is not None:
        return _from_csv(Path(spec), default, states)
    if folder is not None and (folder / TAXONOMY_FILE).is_file():
        taxonomy = _from_csv(folder / TAXONOMY_FILE, default, states)
        logger.info("taxonomy: %s from %s", taxonomy, folder / TAXONOMY_FILE)
        return taxonomy
    regular = [c for c in codes if special_state(c, states) is None]
    known = sum(default.normalize(c) is not None for c in regular)
    if 2 * known < len(regular):
        taxonomy = Taxonomy.infer(codes, states=states)
        logger.info(
            "taxonomy: inferred from the data (%d codes): only %d of %d distinct codes are occ1990dd codes",
            len(taxonomy) - len(SPECIAL_STATES),
            known,
            len(regular),
        )
        return taxonomy
    logger.info("taxonomy: occ1990dd (%d of %d distinct codes are occ1990dd codes)", known, len(regular))
    return default


def _from_csv(path: Path, default: Taxonomy, states: Mapping[str, str] | None = None) -> Taxonomy:
    """A taxonomy CSV; one that spells occ1990dd (as every folder written with it does) is occ1990dd itself.

    The CSV has no room for occ1990dd's subgroups, employment weights and crosswalk aliases; recognising it by
    its fingerprint gives them back, so a panel folder reads back with the taxonomy it was written with.
    """
    taxonomy = Taxonomy.from_csv(path, states)
    return default if taxonomy.fingerprint() == default.fingerprint() else taxonomy


def source_name(name: str) -> str:
    """A valid ``source`` from a file or folder name: lower-cased, anything outside [a-z0-9_] becomes '_'."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower()) or "_"


def replace_folder(out_dir: Path, owned: Callable[[str], bool], write: Callable[[Path], T]) -> T:
    """Write a folder's files with ``write(tmp_dir)`` into a sibling folder, then swap it in.

    A folder that already exists may only hold plain files that ``owned(name)`` recognises (files this
    writer wrote before); they are replaced as a whole, so no stale shard of a larger earlier write survives.
    Anything else in it is the user's, and the write is refused before a byte is written.

    Raises:
        LaborLMError: ``out_dir`` is a file, or a folder that holds files the writer does not own, or its
            parent cannot be written in.
    """
    if out_dir.exists():
        if not out_dir.is_dir():
            raise LaborLMError(f"{out_dir}: exists and is not a folder")
        foreign = sorted(p.name for p in out_dir.iterdir() if not (p.is_file() and owned(p.name)))
        if foreign:
            raise LaborLMError(
                f"{out_dir}: refusing to overwrite a folder that holds other files ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); write to an empty or new folder"
            )
    remove_stale_temps(out_dir)  # what a killed run of this writer left beside the folder
    tmp = temp_sibling(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise LaborLMError(f"{out_dir}: cannot write the folder here ({exc.strerror or exc})") from None
    try:
        result = write(tmp)
        if out_dir.exists():
            for old in out_dir.iterdir():
                old.unlink()
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        failure = write_failure(exc, out_dir)  # a disk that filled up or turned read-only mid-write
        if failure is not None:
            raise failure from exc
        raise
    return result
