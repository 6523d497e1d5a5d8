"""Running a module in eval mode for one call and putting its mode back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode (no dropout) inside the block; its train/eval mode as before after it."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
