"""The demo's training helper (astrofm.demo.training.fit): a killed run resumes and reports the whole run."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from astrofm.demo.training import fit
from astrofm.training import AstroFMDataModule, PretrainModule
from tests.modalities.factories import tiny_config


def _run(root: Path, checkpoints: Path, max_steps: int) -> dict:
    L.seed_everything(0)
    module = PretrainModule(tiny_config(("image", "spectrum")), optimizer={"warmup_steps": 1, "lr": 1e-3})
    data = AstroFMDataModule(str(root), [{"datasets": {"gal": {"path": "gal"}}}], split=None, batch_size=16)
    return fit(module, max_steps=max_steps, seconds=600, checkpoints=checkpoints, progress=False, datamodule=data)


def test_a_resumed_run_reports_its_first_losses_and_the_time_of_both_parts(synthetic_root: Path,
                                                                            tmp_path: Path) -> None:
    first = _run(synthetic_root, tmp_path / "killed", 10)  # leaves last.ckpt at step 10, as a killed run would
    resumed = _run(synthetic_root, tmp_path / "killed", 20)
    assert resumed["steps"] == 20
    # the losses of steps 1-5 come from the checkpoint (the resumed process trained only steps 11-20)
    assert resumed["first_loss"] == first["first_loss"]
    assert resumed["seconds"] > first["seconds"] > 0  # the first part's training time is counted too
