"""Pretrained weights: the model registry, cached and checksummed downloads, converters."""
