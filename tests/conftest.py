"""Shared test settings: no network, few threads (CI has 2 cores)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from typing import TYPE_CHECKING

import pytest
import torch

from tests.helpers.shared import shared_path

if TYPE_CHECKING:
    from astrofm.sim.pipeline import SimulatedUniverse

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SimulatedUniverse:
    """The ``tiny`` simulated universe, seed 0 (1,000 galaxies + 1,000 stars, 64×64 cutouts), made once per
    session and shared by the xdist workers. Tests read it; they write their outputs elsewhere."""
    from filelock import FileLock

    from astrofm.sim import simulate

    root = shared_path(tmp_path_factory, "sim-tiny")
    with FileLock(f"{root}.lock"):
        return simulate(root, preset="tiny", seed=0, workers=1, progress=False)


@pytest.fixture(scope="session")
def tiny_sim(tiny: SimulatedUniverse) -> Path:
    """The root folder of the ``tiny`` simulated universe."""
    return tiny.root


@pytest.fixture(autouse=True)
def _denormals_restored():
    """Training flushes denormal floats to zero for speed (process-wide CPU state); put it back after each test
    so that later tests (e.g. hypothesis' float strategies) see IEEE floats."""
    yield
    torch.set_flush_denormal(False)
