"""bf16 where the hardware computes it natively, float32 elsewhere.

bf16 autocast halves activation memory and, on hardware with bf16 units (CUDA GPUs from Ampere on,
CPUs with AVX512-BF16 or AMX), speeds transformers up 2-3x. On a CPU without them (AVX2-only x86,
e.g. AMD Zen 2/3 or most laptop Intel chips) PyTorch emulates bf16 and the same work runs 4-6x *slower*
than float32. :func:`inference_autocast` and :func:`fit_precision` pick bf16 only where it is native.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used, so the CLI can read INFERENCE_PRECISIONS cheaply
    import torch

log = logging.getLogger(__name__)

#: Lightning precisions that compute in bf16 (mixed or true).
BF16_PRECISIONS = frozenset({"bf16-mixed", "bf16-true", "bf16"})


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` has bf16 arithmetic units (CUDA: ``is_bf16_supported``; CPU: AVX512-BF16 or AMX)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


#: Inference precisions: bf16 where native (``auto``), always float32 (``32``), always bf16 autocast (``bf16``).
INFERENCE_PRECISIONS = ("auto", "32", "bf16")


def inference_autocast(device: torch.device | str = "cpu", precision: str = "auto"
                       ) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` if it computes bf16 natively (``auto``) or if asked to (``bf16``), else a
    no-op (float32)."""
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS}, not {precision!r}")
    import torch

    device = torch.device(device)
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_dtype(device: torch.device | str, dtype: torch.dtype) -> torch.dtype:
    """The dtype that weights of ``dtype`` on ``device`` compute in here: the autocast dtype where autocast
    is on for the device type and the weights are float32, else ``dtype``."""
    import torch

    device_type = torch.device(device).type
    if dtype == torch.float32 and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return dtype


def fit_precision(precision: str, accelerator: Any = "auto") -> str:
    """The Lightning precision to train with: ``precision``, except that a bf16 precision on a CPU
    without native bf16 becomes ``32-true`` (with a warning), since emulated bf16 trains several times slower.

    ``accelerator`` is the trainer's (``auto`` means CUDA when one is visible); any other accelerator (a GPU,
    an Accelerator object) keeps ``precision``.
    """
    if str(precision) not in BF16_PRECISIONS or accelerator not in ("auto", "cpu"):
        return precision
    import torch

    if (accelerator == "auto" and torch.cuda.is_available()) or native_bf16("cpu"):
        return precision
    log.warning("trainer.precision %s on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated and runs "
                "several times slower than float32: training in 32-true instead", precision)
    return "32-true"
