"""Distributed training: ranks deliver the same number of training batches every epoch, evaluation covers every
object once, and a 2-process CPU DDP fit of a tiny config runs across epochs (before, a rank without a block
failed and uneven ranks would hang)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from astrofm.data.dataset import MMUDataset
from astrofm.data.streaming import StreamingDataset
from astrofm.training import AstroFMDataModule, SubsetSource
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


def test_evaluation_covers_every_object_once_across_ranks(synthetic_root: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    seen: dict[str, list[list[str]]] = {"train": [], "val": [], "test": []}
    lengths: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        data = AstroFMDataModule(str(synthetic_root), [{"datasets": {"gal": {"path": "gal"}}}], split=None,
                                 split_fractions=(0.5, 0.3, 0.2), batch_size=8, eval_batch_size=4, block_size=8)
        for split, loader in (("train", data.train_dataloader()), ("val", data.val_dataloader()),
                              ("test", data.test_dataloader())):
            lengths[split].append(len(loader))
            seen[split].append([oid for batch in loader for oid in batch.object_id])
            assert len(seen[split][-1]) <= len(loader) * (8 if split == "train" else 4)
    assert lengths["train"][0] == lengths["train"][1]  # training ranks step together
    assert lengths["val"][0] != lengths["val"][1]  # the evaluation layout is uneven ...
    for split in ("val", "test"):  # ... and still every object is evaluated, once
        ids = seen[split][0] + seen[split][1]
        assert sorted(ids) == sorted(data.splits[split].object_ids.tolist())


def test_no_rank_evaluates_a_split_that_leaves_a_rank_without_objects(synthetic_root: Path) -> None:
    data = MMUDataset(synthetic_root / "gal")
    one = SubsetSource(data, data.catalog.object_id[:1])  # a rank that skipped evaluation would hang the others
    loaders = [EpochLoader(StreamingDataset(one, batch_size=4, shuffle=False, rank=r, world_size=2),
                           equal_ranks=False) for r in range(2)]
    assert [len(loader) for loader in loaders] == [0, 0]
    assert [list(loader) for loader in loaders] == [[], []]


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
