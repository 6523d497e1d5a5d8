"""bf16 only where the hardware computes it: autocast for inference, the trainer's precision for fit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from astrofm.training.cli import run
from astrofm.utils.precision import fit_precision, inference_autocast, native_bf16

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def cpu_with_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """Pretend the CPU has (or lacks) AVX512-BF16, has no AMX, and that no GPU is visible."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("native", [True, False])
def test_inference_autocast_uses_bf16_only_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch,
                                                                native: bool) -> None:
    cpu_with_bf16(monkeypatch, native)
    assert native_bf16("cpu") is native
    layer = torch.nn.Linear(8, 4)
    with torch.no_grad(), inference_autocast("cpu"):
        out = layer(torch.randn(2, 8))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_a_device_without_bf16_units_gets_float32() -> None:
    assert native_bf16("meta") is False
    with inference_autocast("meta"):
        assert not torch.is_autocast_enabled("cpu")


def test_fit_precision_falls_back_to_float32_on_an_emulating_cpu(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    cpu_with_bf16(monkeypatch, False)
    with caplog.at_level(logging.WARNING, logger="astrofm.utils.precision"):
        assert fit_precision("bf16-mixed", "auto") == "32-true"
        assert fit_precision("bf16-mixed", "cpu") == "32-true"
    assert "without native bf16" in caplog.text
    assert fit_precision("32-true", "cpu") == "32-true"
    assert fit_precision("16-mixed", "cpu") == "16-mixed"  # not ours to change
    assert fit_precision("bf16-mixed", "gpu") == "bf16-mixed"  # a GPU request is Lightning's to check
    cpu_with_bf16(monkeypatch, True)
    assert fit_precision("bf16-mixed", "cpu") == "bf16-mixed"


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_fit_cli_trains_a_bf16_config_in_float32_on_an_emulating_cpu(
        monkeypatch: pytest.MonkeyPatch, tiny_sim: Path, tmp_path: Path, native: bool, expected: str) -> None:
    cpu_with_bf16(monkeypatch, native)
    monkeypatch.chdir(tmp_path)
    cli = run(["--config", str(CONFIGS / "galaxy-clip-tiny.yaml"), "--data.root", str(tiny_sim),
               "--trainer.enable_progress_bar", "false", "--trainer.max_steps", "1",
               "--trainer.limit_val_batches", "0"])
    assert cli.trainer.precision == expected
    assert cli.trainer.global_step == 1
