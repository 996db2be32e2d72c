"""The corpus manifest: what a corpus folder holds, what produced it, and whether a re-run has anything to do.

llm-foundry's done-file pattern (``convert_text_to_mds.py::is_already_processed``): ``manifest.json`` is
written last, atomically, so its presence means the build finished. A re-run skips all work only when the
manifest's config hash, template and taxonomy fingerprints and input file stamps all equal the current ones,
and every file it lists is still there with its recorded size. Anything else rebuilds from scratch.

Input files are stamped by path, size and modification time (nanoseconds), not by content hash: hashing a
10M-row panel on every call would cost more than many builds, and every writer in LaborLM replaces files
rather than editing them in place, which changes the mtime.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT = "laborlm.corpus/1"
MANIFEST_FILE = "manifest.json"
REJECTS_FILE = "rejects.jsonl"
TAXONOMY_FILE = "taxonomy.csv"
TEMPLATE_FILE = "template.yaml"


@dataclass(frozen=True)
class FileStamp:
    """An input file as the manifest remembers it; equal stamps mean "unchanged"."""

    path: str  # absolute
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        st = path.stat()
        return cls(str(path.resolve()), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class InputSummary:
    """One ``--input`` panel: its files and what became of its rows."""

    path: str
    files: tuple[FileStamp, ...]
    grouping: str  # "shards": whole persons per input shard, no shuffle; "shuffle": regrouped by person hash
    rows_in: int
    rows_kept: int
    rows_rejected: int
    people: int


@dataclass(frozen=True)
class OutputShard:
    name: str  # file name inside the corpus folder
    rows: int  # documents (people)
    bytes: int


@dataclass(frozen=True)
class CorpusManifest:
    """Everything needed to trust, reproduce and account for a corpus. ``rows_*`` count person-years."""

    config_hash: str
    config: dict[str, Any]
    template: dict[str, Any]  # name, version, fingerprint, occupation (title | code)
    taxonomy: dict[str, Any]  # name, fingerprint, size (K)
    inputs: tuple[InputSummary, ...]
    rows_in: int
    rows_kept: int  # = person-years rendered
    rows_rejected: int
    people: dict[str, dict[str, int]]  # source -> split -> documents
    chars: int
    files: tuple[OutputShard, ...]
    rejects_file: str = REJECTS_FILE
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)  # producer facts that do not affect the content

    @property
    def documents(self) -> int:
        return sum(n for splits in self.people.values() for n in splits.values())

    def line(self, folder: str | Path) -> str:
        """A one-line summary for the command line."""
        people = "; ".join(
            f"{src} " + " / ".join(f"{split} {n:,}" for split, n in splits.items())
            for src, splits in self.people.items()
        )
        rejected = (
            f" ({self.rows_rejected:,} rejected -> {Path(folder) / self.rejects_file})"
            if self.rows_rejected
            else ""
        )
        return (
            f"{folder}: {self.documents:,} documents ({people}); {self.rows_kept:,} of {self.rows_in:,} person-years "
            f"rendered{rejected}; {len(self.files)} shard(s); template {self.template['name']} "
            f"v{self.template['version']}"
        )

    def input_stamps(self) -> tuple[tuple[str, tuple[FileStamp, ...]], ...]:
        return tuple((i.path, i.files) for i in self.inputs)

    def is_current(
        self,
        *,
        config_hash: str,
        template_fingerprint: str,
        taxonomy_fingerprint: str,
        inputs: tuple[tuple[str, tuple[FileStamp, ...]], ...],
        folder: Path,
    ) -> bool:
        """True when a build with these settings would reproduce this corpus, so it can be skipped."""
        if (
            self.format != FORMAT
            or self.config_hash != config_hash
            or self.template.get("fingerprint") != template_fingerprint
            or self.taxonomy.get("fingerprint") != taxonomy_fingerprint
            or self.input_stamps() != inputs
        ):
            return False
        for shard in self.files:
            path = folder / shard.name
            if not path.is_file() or path.stat().st_size != shard.bytes:
                return False
        return all((folder / name).is_file() for name in (self.rejects_file, TAXONOMY_FILE, TEMPLATE_FILE))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CorpusManifest:
        data = json.loads(text)
        inputs = tuple(
            InputSummary(**{**i, "files": tuple(FileStamp(**f) for f in i["files"])})
            for i in data.pop("inputs")
        )
        files = tuple(OutputShard(**f) for f in data.pop("files"))
        return cls(inputs=inputs, files=files, **data)

    def write(self, folder: Path) -> Path:
        """Write ``manifest.json`` atomically (the done-file: it appears whole or not at all)."""
        path = folder / MANIFEST_FILE
        tmp = folder / f".{MANIFEST_FILE}.tmp"
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path


def read_manifest(folder: Path) -> CorpusManifest | None:
    """The manifest of a corpus folder, or None when there is none or it cannot be parsed (then: rebuild)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return CorpusManifest.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("%s: unreadable corpus manifest (%s); the corpus will be rebuilt", path, exc)
        return None
