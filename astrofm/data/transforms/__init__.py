"""Per-modality transforms; statistics are fitted on the train split only and saved as JSON."""

from astrofm.data.transforms.base import TRANSFORMS, Compose, SampleTransform, Transform
from astrofm.data.transforms.image import (
    AperturePhotometry,
    ArcsinhScale,
    CenterCrop,
    PercentileScale,
    RandomFlipRot90,
    Resize,
    SelectBands,
)
from astrofm.data.transforms.lightcurve import LengthCap, PerBandNormalize, TimeZeroPoint
from astrofm.data.transforms.spectrum import IvarNormalize, MaskBadPixels, Resample
from astrofm.data.transforms.tabular import Standardize

__all__ = [
    "TRANSFORMS",
    "AperturePhotometry",
    "ArcsinhScale",
    "CenterCrop",
    "Compose",
    "IvarNormalize",
    "LengthCap",
    "MaskBadPixels",
    "PerBandNormalize",
    "PercentileScale",
    "RandomFlipRot90",
    "Resample",
    "Resize",
    "SampleTransform",
    "SelectBands",
    "Standardize",
    "TimeZeroPoint",
    "Transform",
]
