"""astrofm: multimodal astronomical foundation models on Multimodal Universe data."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from astrofm._version import __version__

if TYPE_CHECKING:
    from astrofm.ar import ARModel
    from astrofm.hub.registry import list_pretrained
    from astrofm.model import AstroFM

__all__ = ["ARModel", "AstroFM", "__version__", "list_pretrained"]

#: Public names imported on first use (they pull in torch), so ``import astrofm`` stays fast.
_LAZY = {"AstroFM": "astrofm.model", "ARModel": "astrofm.ar", "list_pretrained": "astrofm.hub.registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'astrofm' has no attribute {name!r}")
