"""A 2-process CPU DDP run (gloo) gives the loss and gradients of one process on the combined batch.

Contrastive: negatives gathered from every rank. Prediction and autoregressive: means over every rank's objects
or tokens, which the ranks hold in unequal numbers (a per-rank mean averaged by DDP would weigh them unequally).
Every rank's loss is the loss over all ranks' objects.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch import nn

from astrofm.data.batch import collate
from astrofm.objectives import create_objective
from astrofm.objectives.distributed import local_only
from tests.ar.factories import tiny_ar_model
from tests.modalities.factories import raw_samples, tiny_model

MODALITIES = ("image", "spectrum", "lightcurve")
#: Rank 0 gets 5 objects, rank 1 gets 7 (unequal local batches); rank 1 has no light curve at all.
SPLIT = 5


def _samples() -> list[dict]:
    samples = raw_samples(12, modalities=MODALITIES, seed=4)
    for i in (1, 3, 8):
        del samples[i]["spectrum"]
    for i in range(SPLIT, 12):
        del samples[i]["lightcurve"]
    return samples


#: Objectives (model factory, name, options) that must give the same loss and gradients; rank 1 has no light curve.
OBJECTIVES = {
    "contrastive": (tiny_model, "contrastive", {}),
    "predict": (tiny_model, "predict", {"pairs": [["image", "spectrum"], ["lightcurve", "spectrum"],
                                                  ["spectrum", "spectrum"]], "hidden": 16, "bins": 8}),
    "autoregressive": (tiny_ar_model, "autoregressive", {"weights": {"lightcurve": 2.0}}),
}
#: Objectives with random masks or shifts, which one process cannot draw alike: every rank's loss must still be
#: the mean over all ranks.
RANDOMIZED = {
    "masked": (tiny_model, "masked", {}),
    "wavelength_shift": (tiny_model, "wavelength_shift", {}),
}


class _Step(nn.Module):
    def __init__(self, objective: str) -> None:
        super().__init__()
        factory, name, options = {**OBJECTIVES, **RANDOMIZED}[objective]
        self.model = factory(MODALITIES)
        self.objective = create_objective(name, self.model, **options)

    def forward(self, batch):  # type: ignore[no-untyped-def]
        return self.objective(self.model, batch).loss


def _grads(step: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            for n, p in step.named_parameters()}


def _worker(rank: int, port: int, out: str, objective: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    try:
        step = _Step(objective)
        ddp = nn.parallel.DistributedDataParallel(step, find_unused_parameters=True)
        samples = _samples()
        local = samples[:SPLIT] if rank == 0 else samples[SPLIT:]
        batch = collate([step.model.transform(s) for s in local])
        loss = ddp(batch)
        loss.backward()
        rank_losses = [torch.zeros(()) for _ in range(2)]
        dist.all_gather(rank_losses, loss.detach().float())
        local_losses = []
        with local_only(), torch.no_grad():  # validation: rank 1 evaluates two batches, rank 0 one, no deadlock
            for _ in range(1 + rank):
                local_losses.append(step(batch).reshape(1))
        if rank == 0:
            save_file({"rank_losses": torch.stack(rank_losses), "local_loss": local_losses[0],
                       **{f"grad.{k}": v for k, v in _grads(step).items()}}, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _run_ddp(tmp_path: Path, objective: str) -> dict[str, torch.Tensor]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "ddp.safetensors")
    mp.spawn(_worker, args=(port, out, objective), nprocs=2, join=True)
    return load_file(out)


@pytest.mark.slow
@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_ddp_loss_and_gradients_equal_single_process(tmp_path: Path, objective: str) -> None:
    ddp = _run_ddp(tmp_path, objective)
    step = _Step(objective)
    batch = collate([step.model.transform(s) for s in _samples()])
    loss = step(batch)
    loss.backward()
    for rank_loss in ddp["rank_losses"]:  # the loss over all ranks' objects, on every rank
        torch.testing.assert_close(rank_loss, loss.detach(), atol=1e-6, rtol=1e-5)
    grads = _grads(step)
    assert any(g.abs().sum() > 0 for g in grads.values())
    for name, g in grads.items():
        torch.testing.assert_close(ddp[f"grad.{name}"], g, atol=1e-6, rtol=1e-4, msg=name)
    with torch.no_grad():  # under local_only a rank's loss is the single-process loss of its own batch
        expected = step(collate([step.model.transform(s) for s in _samples()[:SPLIT]]))
    torch.testing.assert_close(ddp["local_loss"][0], expected, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("objective", list(RANDOMIZED))
def test_randomized_objectives_give_every_rank_the_mean_over_all_ranks(tmp_path: Path, objective: str) -> None:
    losses = _run_ddp(tmp_path, objective)["rank_losses"]
    assert torch.isfinite(losses).all() and losses[0] > 0
    torch.testing.assert_close(losses[0], losses[1])  # per-rank means would differ by far more than rounding
