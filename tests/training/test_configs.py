"""Every shipped config (configs/ and configs/science/) builds its model and objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from astrofm.objectives import OBJECTIVES
from astrofm.training import PretrainModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL = sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "science").glob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_config_builds_its_module(path: Path) -> None:
    model = yaml.safe_load(path.read_text())["model"]
    assert model["class_path"] == "astrofm.training.PretrainModule"
    init_args = dict(model["init_args"])
    init_from = init_args.pop("init_from", None)
    if init_from is not None:  # a shipped zoo model, or another science run's output (absent from a fresh checkout)
        assert str(init_from).startswith(("astrofm/hub/weights/", "runs/science/")), init_from
        if (CONFIGS.parent / init_from).exists():
            init_args["init_from"] = str(CONFIGS.parent / init_from)
    module = PretrainModule(**init_args)
    assert set(module.model.modalities) == set(model["init_args"]["astrofm"]["modalities"])
    assert isinstance(module.objective, OBJECTIVES[model["init_args"].get("objective", {}).get("name", "contrastive")])
