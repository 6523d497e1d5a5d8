"""Modality encoders, one module per modality, in one registry: ``create_encoder(name, **config)``.

Registered names: ``image_vit``, ``image_timm``, ``spectrum``, ``lightcurve``,
``tabular`` (feature tokenizer) and ``tabular_mlp``. A new modality is a new
module that subclasses :class:`ModalityEncoder` (or :class:`TransformerEncoder`)
and decorates it with ``@register_encoder("name")``.
"""

from astrofm.modalities.base import (
    ENCODERS,
    EncoderConfig,
    EncoderOutput,
    ModalityEncoder,
    TransformerConfig,
    TransformerEncoder,
    create_encoder,
    list_encoders,
    register_encoder,
)
from astrofm.modalities.image import TimmConfig, TimmImageEncoder, ViTConfig, ViTImageEncoder
from astrofm.modalities.lightcurve import LightCurveConfig, LightCurveEncoder
from astrofm.modalities.spectrum import SpectrumConfig, SpectrumEncoder
from astrofm.modalities.tabular import (
    FeatureTokenizerConfig,
    FeatureTokenizerEncoder,
    TabularMLPConfig,
    TabularMLPEncoder,
)

__all__ = [
    "ENCODERS",
    "EncoderConfig",
    "EncoderOutput",
    "FeatureTokenizerConfig",
    "FeatureTokenizerEncoder",
    "LightCurveConfig",
    "LightCurveEncoder",
    "ModalityEncoder",
    "SpectrumConfig",
    "SpectrumEncoder",
    "TabularMLPConfig",
    "TabularMLPEncoder",
    "TimmConfig",
    "TimmImageEncoder",
    "TransformerConfig",
    "TransformerEncoder",
    "ViTConfig",
    "ViTImageEncoder",
    "create_encoder",
    "list_encoders",
    "register_encoder",
]
