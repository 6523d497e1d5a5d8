"""Atomic file writes: write to a temporary file in the same folder, then rename.

A reader never sees a half-written file, and a crash mid-write leaves the
previous version of the file intact.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: The name :func:`atomic_path` gives its temporary file with a ``.tmp`` suffix (``mkstemp``: 8 random chars).
_TEMP_FILE = re.compile(r"\.(.+)\.[a-z0-9_]{8}(\.[^.]+)?\.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file lives in the destination folder so that the final
    ``os.replace`` is a same-filesystem rename (atomic on POSIX). On any
    exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (folder or absent).

    Files get the usual permissions for the umask (temporary folders and some writers use 0700/0600).
    On any exception the temporary folder is removed and ``path`` is left as it was (an old folder that
    was moved aside is put back). Not fully atomic for readers: POSIX cannot swap a non-empty folder in
    one rename, so the old folder is moved aside first and ``path`` is missing until the new one is
    renamed in. Concurrent writers do not fail: the last one to finish wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        mask = _umask()
        for item in tmp.rglob("*"):
            os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)
        os.chmod(tmp, 0o777 & ~mask)
        _move_dir_into_place(tmp, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_dir_into_place(tmp: Path, path: Path) -> None:
    """Rename folder ``tmp`` to ``path``; an existing ``path`` is moved aside, then deleted or put back on failure."""
    backup = tmp.with_name(tmp.name + ".old")  # unique to this writer, like ``tmp``
    while True:
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, backup)
        try:
            os.replace(tmp, path)
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):  # another writer put its folder there meanwhile
                shutil.rmtree(backup, ignore_errors=True)
                continue
            if backup.exists():
                with contextlib.suppress(OSError):
                    os.replace(backup, path)
            raise
        shutil.rmtree(backup, ignore_errors=True)
        return


def remove_temp_files(root: str | Path) -> list[Path]:
    """Delete the temporary files that interrupted :func:`atomic_path` writes with a ``.tmp`` suffix left
    under ``root`` (``.<name>.<8 random chars>[.<ext>].tmp``); return them. Other files are never touched."""
    stale = [p for p in Path(root).rglob(".*.tmp") if _TEMP_FILE.fullmatch(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
