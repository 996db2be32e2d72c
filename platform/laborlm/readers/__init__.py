"""Readers and writers of career panels: CSV/Parquet panels and CAREER split files <-> the canonical schema.

Every reader validates through ``validate.validate_table`` and returns a ``PanelRead``; bad rows raise an
``InputDataError`` or, given a ``RejectWriter``, go to ``rejects.jsonl``.
"""

from laborlm.readers.career_files import read_career_files, write_career_files
from laborlm.readers.panel import read_panel, write_csv, write_panel
from laborlm.readers.rejects import ReadCounts, RejectWriter
from laborlm.readers.validate import PanelRead, validate_table

__all__ = [
    "PanelRead",
    "ReadCounts",
    "RejectWriter",
    "read_career_files",
    "read_panel",
    "validate_table",
    "write_career_files",
    "write_csv",
    "write_panel",
]
