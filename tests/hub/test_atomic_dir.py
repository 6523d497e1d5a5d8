"""atomic_dir (used to unpack archives into the cache and by save_pretrained): rollback and concurrent writers."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from astrofm.utils.atomic import atomic_dir


def _write(target: Path, text: str) -> None:
    with atomic_dir(target) as tmp:
        (tmp / "w.txt").write_text(text)


def test_a_failed_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "model"
    _write(target, "old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == target and Path(src).name.startswith(".model.") and Path(src).suffix != ".old":
            raise OSError(errno.EACCES, "injected failure", str(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected failure"):
        _write(target, "new")
    assert (target / "w.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no temporary or backup folder is left"


def test_a_writer_that_finishes_while_another_swaps_does_not_fail(tmp_path, monkeypatch):
    """Writer B replaces the folder between writer A's two renames: A still succeeds, and A (last) wins."""
    target = tmp_path / "model"
    _write(target, "v0")
    real_replace = os.replace
    raced: list[bool] = []

    def replace_then_race(src, dst):
        real_replace(src, dst)
        if Path(src) == target and not raced:  # A has moved the old folder aside
            raced.append(True)
            _write(target, "B")

    monkeypatch.setattr(os, "replace", replace_then_race)
    _write(target, "A")
    assert raced and (target / "w.txt").read_text() == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
