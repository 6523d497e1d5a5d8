"""Image encoders: a ViT with a configurable patch size, and any timm backbone by name.

Input: the image ``ModalityBatch`` after transforms, ``flux`` (P, C, H, W) with
C the number of bands (e.g. arcsinh-scaled nanomaggies), optional ``mask``
(True = good pixel; bad pixels are set to 0 when ``zero_bad_pixels``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.modalities.base import (
    EncoderConfig,
    EncoderOutput,
    ModalityEncoder,
    TransformerConfig,
    TransformerEncoder,
    register_encoder,
)
from astrofm.nn import create_pool


def image_pixels(batch: ModalityBatch, in_chans: int, zero_bad_pixels: bool,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """``flux`` (P, C, H, W) as ``dtype`` (an encoder's first layer's), bad pixels zeroed if asked; checks the
    band count."""
    flux = batch.data["flux"]
    if flux.ndim != 4 or flux.shape[1] != in_chans:
        raise ConfigError(f"image encoder expects flux (P, {in_chans}, H, W), got {tuple(flux.shape)}; "
                          "set in_chans to the number of bands (or add SelectBands)")
    if zero_bad_pixels and "mask" in batch.data:
        flux = flux * batch.data["mask"].to(flux.dtype)
    return flux.to(dtype)


@dataclass
class ViTConfig(TransformerConfig):
    """ViT over square cutouts of ``img_size`` pixels cut into ``patch_size`` patches."""

    in_chans: int = 4
    img_size: int = 64
    patch_size: int = 8
    zero_bad_pixels: bool = True


@register_encoder("image_vit")
class ViTImageEncoder(TransformerEncoder):
    """Patch embedding + learned position embedding (interpolated for other sizes) + transformer."""

    config_class = ViTConfig
    modality = "image"

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        if config.img_size % config.patch_size:
            raise ConfigError(f"img_size {config.img_size} is not a multiple of patch_size {config.patch_size}")
        self.grid = config.img_size // config.patch_size
        self.patch = nn.Conv2d(config.in_chans, config.dim, config.patch_size, stride=config.patch_size)
        self.position = nn.Parameter(torch.randn(1, self.grid * self.grid, config.dim) * 0.02)

    def positions(self, h: int, w: int) -> Tensor:
        """(1, h*w, dim) position embeddings for an h x w patch grid."""
        if (h, w) == (self.grid, self.grid):
            return self.position
        grid = self.position.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def tokenize(self, batch: ModalityBatch) -> tuple[Tensor, Tensor | None]:
        cfg: ViTConfig = self.config  # type: ignore[assignment]
        x = self.patch(image_pixels(batch, cfg.in_chans, cfg.zero_bad_pixels, self.patch.weight.dtype))
        h, w = x.shape[-2:]
        return x.flatten(2).transpose(1, 2) + self.positions(h, w), None


@dataclass
class TimmConfig(EncoderConfig):
    """Any timm backbone; ``pretrained`` downloads weights (off by default, never in tests)."""

    model_name: str = "resnet18"
    in_chans: int = 4
    #: Input size for models that need it (ViTs); None for CNNs.
    img_size: int | None = None
    pretrained: bool = False
    zero_bad_pixels: bool = True
    #: Extra keyword arguments of ``timm.create_model``.
    timm_kwargs: dict[str, Any] = field(default_factory=dict)


@register_encoder("image_timm")
class TimmImageEncoder(ModalityEncoder):
    """A timm backbone's feature map (CNN) or tokens (ViT), pooled with a mask-free pool."""

    config_class = TimmConfig
    modality = "image"

    def __init__(self, config: TimmConfig) -> None:
        super().__init__(config)
        import timm

        kwargs = dict(config.timm_kwargs)
        if config.img_size is not None:
            kwargs["img_size"] = config.img_size
        self.backbone = timm.create_model(config.model_name, pretrained=config.pretrained, in_chans=config.in_chans,
                                          num_classes=0, global_pool="", **kwargs)
        self.pool = create_pool(config.pool, self.out_dim, config.pool_heads)

    @property
    def out_dim(self) -> int:
        return int(self.backbone.num_features)

    def forward(self, batch: ModalityBatch) -> EncoderOutput:
        cfg: TimmConfig = self.config  # type: ignore[assignment]
        dtype = next(self.backbone.parameters()).dtype
        features = self.backbone.forward_features(image_pixels(batch, cfg.in_chans, cfg.zero_bad_pixels, dtype))
        tokens = features.flatten(2).transpose(1, 2) if features.ndim == 4 else features
        return EncoderOutput(tokens, None, self.pool(tokens, None))
