"""The train-speed benchmark's torch.compile payback: a one-off cost over the per-step saving."""

from __future__ import annotations

import pytest

from benchmarks.train import compile_payback


def test_compile_cost_excludes_the_warmup_steps_own_time_and_payback_divides_by_the_saving() -> None:
    eager = {"warmup_s": 10.0, "step_s": 4.0}
    compiled = {"warmup_s": 70.0, "step_s": 3.0}  # two warm-up steps of 3 s plus 64 s of compiling
    cost, steps = compile_payback(eager, compiled, warmup=2)
    assert cost == pytest.approx(62.0)  # 64 s of compiling less the 2 s the eager warm-up spent on first-step setup
    assert steps == pytest.approx(62.0)  # 1 s saved a step


def test_no_payback_when_compiled_steps_are_not_faster() -> None:
    cost, steps = compile_payback({"warmup_s": 10.0, "step_s": 4.0}, {"warmup_s": 50.0, "step_s": 4.5}, warmup=2)
    assert cost == pytest.approx(39.0) and steps is None
