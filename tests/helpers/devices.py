"""The devices that device-agnostic tests run on: CPU always, CUDA where a GPU is present (skipped in CI)."""

from __future__ import annotations

import pytest
import torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

#: ``@pytest.mark.parametrize("device", DEVICES)``: a test runs on CPU, and again on CUDA where there is one.
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
