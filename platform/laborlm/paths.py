"""Output paths: check that a folder or file can be written before a job spends time producing it.

Inputs already fail with ``file:row: field`` errors; outputs fail the same way, as a ``LaborLMError`` naming
the path and what is wrong with it (the CLI turns it into one line and exit code 2), never as an ``OSError``
traceback from deep inside a writer. The checks run at the command-line boundary, before any work:

    ensure_writable_dir(Path(cfg.out_dir), "out_dir")       # a folder the job writes into (created)
    ensure_writable_file(Path(args.out), "--out")           # a file written (or replaced) as a whole
    ensure_writable_parent(Path(args.out), "--out")         # a folder that a writer swaps in as a whole

``open_output_file`` opens a file for writing afresh with the same errors, for writers that hold it open.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path
from typing import IO

from laborlm.errors import LaborLMError

logger = logging.getLogger(__name__)


def ensure_writable_dir(path: str | Path, what: str = "output folder", *, create: bool = True) -> Path:
    """Check that files can be created in the folder ``path``, creating it (and its parents) if needed.

    Args:
        path: the folder.
        what: how the message names it (``--out``, ``out_dir``, ``rejects file``).
        create: False leaves a folder that does not exist yet to its writer (which may swap it in whole, or
            read "exists" as "resume"), and checks its parent instead.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        LaborLMError: ``path`` or one of its parents is a file, cannot be created, or is not writable.
    """
    path = Path(path)
    _no_file_above(path, what)
    if path.exists() and not path.is_dir():
        raise LaborLMError(f"{path}: {what} is a file, not a folder")
    if not create and not path.exists():
        return ensure_writable_parent(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LaborLMError(f"{path}: cannot create the {what} ({_why(exc)})") from None
    # A probe file rather than os.access: root passes os.access everywhere, yet cannot create files in /proc.
    try:
        fd, probe = tempfile.mkstemp(prefix=".laborlm-probe-", dir=path)
    except OSError as exc:
        raise LaborLMError(f"{path}: cannot create files in the {what} ({_why(exc)})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def ensure_writable_file(path: str | Path, what: str = "output file") -> Path:
    """Check that a file can be created or replaced at ``path``; its parent folder is created if needed.

    Raises:
        LaborLMError: ``path`` is a folder, or its folder cannot be created or written in.
    """
    path = Path(path)
    if path.is_dir():
        raise LaborLMError(f"{path}: {what} is a folder; give a file name")
    ensure_writable_parent(path, what)
    return path


def ensure_writable_parent(path: str | Path, what: str = "output") -> Path:
    """Check that ``path`` can be created, as a file or a folder swapped in whole, in its parent folder.

    Raises:
        LaborLMError: a parent of ``path`` is a file, or the parent folder cannot be created or written in.
    """
    path = Path(path)
    _no_file_above(path, what)
    try:
        ensure_writable_dir(path.parent, "folder")
    except LaborLMError as exc:
        raise LaborLMError(f"{path}: cannot write the {what} there: {exc}") from None
    return path


def check_output(path: str | Path, kind: str, what: str) -> Path:
    """One output of a command, checked by its kind: ``file``, ``folder`` (not created) or ``path`` (either).

    Raises:
        LaborLMError: as :func:`ensure_writable_file`, :func:`ensure_writable_dir` or
            :func:`ensure_writable_parent`.
    """
    if kind == "file":
        return ensure_writable_file(path, what)
    if kind == "folder":
        return ensure_writable_dir(path, what, create=False)
    if kind == "path":
        return ensure_writable_parent(path, what)
    raise ValueError(f"unknown output kind {kind!r}")


def open_output_file(path: str | Path, what: str = "output file") -> IO[str]:
    """Open ``path`` for writing text afresh (truncating it), creating its folder; errors name the path.

    Raises:
        LaborLMError: as :func:`ensure_writable_file`, or the file itself cannot be opened.
    """
    path = ensure_writable_file(path, what)
    try:
        return open(path, "w", encoding="utf-8")  # the caller owns and closes the handle
    except OSError as exc:
        raise LaborLMError(f"{path}: cannot write the {what} ({_why(exc)})") from None


def _no_file_above(path: Path, what: str) -> None:
    """A clear message for ``afile/sub``: mkdir would only say 'Not a directory' or 'File exists'."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise LaborLMError(f"{path}: cannot create the {what}: {parent} is a file, not a folder")
            return


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)
