"""Where astrofm keeps things: the cache (downloads) and the default data root.

``$ASTROFM_HOME`` overrides the cache root; ``$ASTROFM_DATA`` the data root.
Both default to the platform's user cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Root of astrofm's download cache (``$ASTROFM_HOME`` or the user cache dir)."""
    env = os.environ.get("ASTROFM_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("astrofm"))


def data_root() -> Path:
    """Default root for datasets astrofm writes (``$ASTROFM_DATA`` or ``<cache>/data``)."""
    env = os.environ.get("ASTROFM_DATA")
    return Path(env).expanduser() if env else cache_root() / "data"
