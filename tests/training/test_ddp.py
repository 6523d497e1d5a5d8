"""Distributed training: ranks deliver the same number of batches every epoch, and a 2-process CPU DDP fit of a
tiny config runs across epochs (before, a rank without a block failed and uneven ranks would hang)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from astrofm.data.dataset import MMUDataset
from astrofm.data.streaming import StreamingDataset
from astrofm.training.data import EpochLoader

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_ranks_deliver_the_same_number_of_distinct_batches_each_epoch(synthetic_root: Path) -> None:
    data = MMUDataset(synthetic_root / "gal")  # 200 objects in blocks of 24: ranks get unequal rows
    loaders = [EpochLoader(StreamingDataset(data, batch_size=10, block_size=24, seed=1, rank=r, world_size=2,
                                            drop_last=True)) for r in range(2)]
    counts = [[loader._rank_batches(r, 2) for r in range(2)] for loader in loaders]
    assert counts[0] == counts[1] and counts[0][0] != counts[0][1]  # the layout is uneven
    for epoch in range(3):
        expected = [len(loader) for loader in loaders]
        batches = [list(loader) for loader in loaders]
        assert len(batches[0]) == len(batches[1]) == expected[0] == expected[1] == min(counts[0])
        ids = [oid for rank in batches for batch in rank for oid in batch.object_id]
        assert len(ids) == len(set(ids))  # no object twice in an epoch
        assert all(loader._epoch == epoch + 1 for loader in loaders)  # the epoch was closed on both ranks
        counts = [[loader._rank_batches(r, 2) for r in range(2)] for loader in loaders]


@pytest.mark.slow
def test_two_process_cpu_ddp_fit_crosses_epochs(tiny_sim: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "astrofm", "fit", "--config", str(CONFIGS / "galaxy-clip-tiny.yaml"),
            "--data.root", str(tiny_sim), "--trainer.enable_progress_bar", "false", "--trainer.max_steps", "24",
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = tmp_path / "runs/galaxy-clip-tiny"
    last = torch.load(run_dir / "tensorboard/version_0/checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] >= 20  # saved every 10 steps
    rows = list(csv.DictReader((run_dir / "csv/version_0/metrics.csv").open()))
    assert len({r["epoch"] for r in rows if r["val/loss"]}) >= 2  # validated after each of several epochs
