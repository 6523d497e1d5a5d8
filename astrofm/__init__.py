"""astrofm: multimodal astronomical foundation models on Multimodal Universe data."""

from __future__ import annotations

from typing import Any

from astrofm._version import __version__

__all__ = ["AstroFM", "__version__"]


def __getattr__(name: str) -> Any:
    """Import heavy names (torch) on first use, so ``import astrofm`` stays fast."""
    if name == "AstroFM":
        from astrofm.model import AstroFM

        return AstroFM
    raise AttributeError(f"module 'astrofm' has no attribute {name!r}")
