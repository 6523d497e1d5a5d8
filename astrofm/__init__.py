"""astrofm: multimodal astronomical foundation models on Multimodal Universe data."""

from astrofm._version import __version__

__all__ = ["__version__"]
