"""Paths shared by the xdist workers of one test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_path(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A path shared by all xdist workers of this session (guard writes with a FileLock).

    Under xdist each worker's base temp folder sits in the session's folder; without xdist the base temp
    folder is the session's own (its parent holds every earlier session, whose data may be stale).
    """
    base = tmp_path_factory.getbasetemp()
    return (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / name
