"""The download cache and offline mode.

Files live under ``$ASTROFM_HOME`` (default: the platform's user cache dir),
in ``models/<name>/`` for registry models and ``urls/<sha256 of url>/`` for
plain URLs. ``ASTROFM_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` forbids network
access: cached files load, missing ones raise ``OfflineError``. Processes
that fetch the same file take turns through a lock file beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from astrofm.paths import cache_root

try:
    import fcntl
except ImportError:  # Windows: no inter-process lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when ``ASTROFM_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("ASTROFM_OFFLINE", "HF_HUB_OFFLINE"))


def models_dir() -> Path:
    """``<cache>/models``: one folder per registry model."""
    return cache_root() / "models"


def url_dir(url: str) -> Path:
    """``<cache>/urls/<sha256 of the URL>``: the cache folder of a downloaded URL."""
    return cache_root() / "urls" / hashlib.sha256(url.encode()).hexdigest()[:32]


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock for ``path`` (``flock`` on ``.<name>.lock`` beside it).

    Where ``fcntl`` is missing (Windows) this does not lock. The lock file stays: deleting it would let
    a waiting process and a new one both hold a lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another process working on %s", path)
                fcntl.flock(handle, fcntl.LOCK_EX)
        yield
