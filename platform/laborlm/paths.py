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
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO

from laborlm.errors import LaborLMError

logger = logging.getLogger(__name__)

# Run-folder layout shared by writers and readers in different packages.
PLACEMENT_GROUP_FILE = (
    "placement_group.id"  # a running training phase's worker placement group (training.loop)
)


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


_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\]")


def write_failure(exc: BaseException, target: str | Path) -> LaborLMError | None:
    """The one-line error for an output that could not be written while a job ran (the disk filled up, turned
    read-only, or lost its permissions), or None when ``exc`` is about something else.

    The checks above run before a job starts; this is for what happens *during* the write. The ``OSError`` is
    looked for in ``exc`` and what it wraps: Arrow raises it from deep inside a Parquet writer. A Ray task's
    error reaches the driver without the worker's exception object (Ray Data re-raises a ``UserCodeException``
    whose cause did not survive pickling), only with its traceback text, so for Ray's errors the
    ``[Errno N]`` in that text decides.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        code = e.errno if isinstance(e, OSError) else None
        if code is None and type(e).__module__.startswith("ray."):
            found = [int(n) for n in _ERRNO_TEXT.findall(str(e)) if int(n) in _WRITE_ERRNOS]
            code = found[-1] if found else None
        if code in _WRITE_ERRNOS:
            return LaborLMError(
                f"{target}: cannot write the output: {_WRITE_ERRNOS[code]} "
                "(the partial output was removed; re-run when there is room)"
            )
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def temp_sibling(final: str | Path) -> Path:
    """Where a writer puts ``final`` until it is whole: ``.NAME.tmp-PID-RANDOM`` beside it, renamed over ``final``
    at the end. The PID lets a later run tell what a killed writer left from what a live one is writing."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temps(final: str | Path) -> list[Path]:
    """Remove the :func:`temp_sibling` files and folders of ``final`` that a killed run left behind (SIGKILL, a
    lost machine: no ``finally`` ran), each logged: those older than this process whose writer is no longer
    running. Another live process's are never touched; names of another form are left alone."""
    final = Path(final)
    prefix = f".{final.name}.tmp-"
    try:
        candidates = [p for p in final.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    started = _process_start()
    removed = []
    for path in candidates:
        m = re.fullmatch(r"(\d+)-[0-9a-f]+", path.name[len(prefix) :])
        if m is None:
            continue
        pid = int(m[1])
        try:
            if path.lstat().st_mtime >= started or (pid != os.getpid() and _running(pid)):
                continue
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError as exc:
            logger.warning(
                "%s: could not remove %s, left by an interrupted run (%s)", final, path.name, _why(exc)
            )
            continue
        logger.info("removed %s, left by an interrupted run (process %d)", path, pid)
        removed.append(path)
    return removed


def _process_start() -> float:
    """When this process started (seconds since the epoch); what it writes is never older."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - psutil (a Ray dependency) missing or unable: the time LaborLM was loaded
        return _LOADED


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


_LOADED = time.time()
