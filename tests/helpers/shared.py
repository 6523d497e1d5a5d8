"""Paths shared by the xdist workers of one test session."""

from __future__ import annotations

from pathlib import Path

import pytest


def shared_path(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A path shared by all xdist workers of this session (guard writes with a FileLock)."""
    return tmp_path_factory.getbasetemp().parent / name
