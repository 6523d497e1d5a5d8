"""Tokenizers of the autoregressive model: each modality becomes a sequence of real-valued tokens.

A tokenizer reads one ``ModalityBatch`` (the P objects that have the modality) and returns
:class:`Tokens`: token values (P, L, F) - the model's input and its regression target -, which
of them are real, per-value loss weights and the position embedding of each token. It also owns
the modality's learned embedder (values -> width D), its prediction head (width D -> values)
and a learned modality embedding added to all its tokens.

Registered tokenizers (``create_tokenizer(name, dim=..., **options)``):

- ``image_patches``: square patches of ``patch_size`` pixels (flattened pixel-major, band last),
  standardized per patch (astrofm's or AstroPT's formula), in raster, spiral (centre-out) or AstroPT's
  spiral order; learned position per patch.
- ``spectrum_windows``: windows of ``window`` pixels of the (normalized) flux, cut with the
  spectrum encoder's ``unfold``; bad pixels are 0 and weigh nothing in the loss; position from the
  log wavelength [Å] of the window centre (or the window index).
- ``lightcurve_points``: one token per observation (flux, flux_err), sorted by time; position
  from the time [days] and the band.
- ``tabular_features``: one token per catalog feature (its standardized value); missing
  features are not tokens; a learned embedding per feature.
- ``tokens``: tokens made outside astrofm (``data["tokens"]`` (P, L, F), optional integer
  ``data["positions"]``), e.g. for AstroPT checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.modalities.image import image_pixels
from astrofm.modalities.spectrum import spectrum_pixels, unfold_windows, window_tokens
from astrofm.modalities.tabular import tabular_values
from astrofm.nn import ContinuousEncoding, build_mlp

T = TypeVar("T", bound="type[ARTokenizer]")

#: Tokenizer classes by registered name.
TOKENIZERS: dict[str, type[ARTokenizer]] = {}


@dataclass
class Tokens:
    """One modality's token sequences over the P objects that have it."""

    values: Tensor  # (P, L, F) token values: input and regression target
    mask: Tensor  # (P, L) bool, True = real token
    weight: Tensor | None  # (P, L, F) loss weight of each value (None: all 1)
    position: Tensor  # (P, L, D) position embedding


@dataclass
class TokenizerConfig:
    """Options shared by every tokenizer: the embedder and head MLPs."""

    #: "mlp" (Linear-GELU-Linear, AstroPT's "aim" tokeniser) or "linear".
    embedder: str = "mlp"
    #: Hidden width of the embedder and head MLPs (None: 4 x the model width).
    hidden: int | None = None
    #: Biases in the embedder and head.
    bias: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TokenizerConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown option(s) {unknown}; known: {sorted(names)}")
        return cls(**values)


class ARTokenizer(nn.Module, ABC):
    """Base class: ``tokenize(ModalityBatch) -> Tokens``, plus the embedder, head and modality embedding."""

    config_class: ClassVar[type[TokenizerConfig]] = TokenizerConfig

    def __init__(self, config: TokenizerConfig, dim: int, gelu: str = "tanh") -> None:
        super().__init__()
        self.config = config
        self.dim = dim
        if config.embedder not in ("mlp", "linear"):
            raise ConfigError(f"tokenizer embedder must be 'mlp' or 'linear', not {config.embedder!r}")
        hidden = config.hidden or 4 * dim
        size = self.token_size
        mlp = config.embedder == "mlp"
        self.embedder = build_mlp([size, hidden, dim] if mlp else [size, dim], gelu=gelu, bias=config.bias)
        self.head = build_mlp([dim, hidden, size] if mlp else [dim, size], gelu=gelu, bias=config.bias)
        self.modality_embedding = nn.Parameter(torch.randn(dim) * 0.02)

    @property
    @abstractmethod
    def token_size(self) -> int:
        """F, the number of values per token."""

    @abstractmethod
    def tokenize(self, batch: ModalityBatch) -> Tokens:
        """Tokens of the present objects."""

    def embed(self, values: Tensor, position: Tensor) -> Tensor:
        """Token values (..., F) and position embeddings (..., D) -> model inputs (..., D)."""
        return self.embedder(values.to(self.modality_embedding.dtype)) + position + self.modality_embedding

    def predict(self, hidden: Tensor) -> Tensor:
        """Hidden states (..., D) -> predicted token values (..., F)."""
        return self.head(hidden)


def register_tokenizer(name: str) -> Callable[[T], T]:
    """Class decorator: make a tokenizer available to :func:`create_tokenizer` as ``name``."""

    def decorate(cls: T) -> T:
        if name in TOKENIZERS and TOKENIZERS[name] is not cls:
            raise ConfigError(f"a tokenizer named {name!r} is already registered ({TOKENIZERS[name].__name__})")
        TOKENIZERS[name] = cls
        return cls

    return decorate


def create_tokenizer(name: str, *, dim: int, gelu: str = "tanh", **config: Any) -> ARTokenizer:
    """A tokenizer by registered name for a model of width ``dim``, its options as keywords."""
    if name not in TOKENIZERS:
        raise ConfigError(f"unknown AR tokenizer {name!r}; registered: {sorted(TOKENIZERS)}")
    cls = TOKENIZERS[name]
    return cls(cls.config_class.from_dict(config), dim, gelu)


def _all_real(values: Tensor) -> Tensor:
    return torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)


# -- images -----------------------------------------------------------------------------------------------
def spiral_order(height: int, width: int) -> list[int]:
    """Raster indices of an ``height`` x ``width`` grid, centre first, then ring by ring outwards.

    Rings are squares around the grid centre (Chebyshev distance); within a ring cells go
    anticlockwise on the sky image (increasing angle), starting from the +x direction.
    """
    cy, cx = (height - 1) / 2, (width - 1) / 2
    cells = [(max(abs(r - cy), abs(c - cx)), math.atan2(-(r - cy), c - cx) % (2 * math.pi), r * width + c)
             for r in range(height) for c in range(width)]
    return [index for _, _, index in sorted(cells)]


def astropt_spiral_order(size: int) -> list[int]:
    """Raster indices of a ``size`` x ``size`` grid in AstroPT's spiral order (its dataset's ``spiral=True``).

    The reverse of the clockwise walk inwards from the top-left cell (along the top row first): the
    centre comes first and the top-left cell last.
    """
    inward: list[int] = []
    top, left, bottom, right = 0, 0, size - 1, size - 1
    while top <= bottom:
        inward += [top * size + c for c in range(left, right + 1)]
        inward += [r * size + right for r in range(top + 1, bottom + 1)]
        if top < bottom:
            inward += [bottom * size + c for c in range(right - 1, left - 1, -1)]
            inward += [r * size + left for r in range(bottom - 1, top, -1)]
        top, left, bottom, right = top + 1, left + 1, bottom - 1, right - 1
    return inward[::-1]


def patchify(images: Tensor, patch: int) -> Tensor:
    """(P, C, H, W) -> (P, (H/p)(W/p), p*p*C) patches in raster order, pixel-major with the band last."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: Tensor, patch: int, channels: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`patchify`: (P, L, p*p*C) raster-order patches -> (P, C, H, W)."""
    n = patches.shape[0]
    x = patches.reshape(n, height // patch, width // patch, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(n, channels, height, width)


@dataclass
class ImagePatchesConfig(TokenizerConfig):
    """Square cutouts of ``img_size`` pixels with ``in_chans`` bands cut into ``patch_size`` patches."""

    in_chans: int = 4
    img_size: int = 64
    patch_size: int = 8
    #: "raster", "spiral" (centre-out, :func:`spiral_order`), "astropt_spiral" (:func:`astropt_spiral_order`)
    #: or an explicit list of raster patch indices.
    order: str | list[int] = "spiral"
    #: Standardize each patch over its pixels and bands: True (mean 0, biased standard deviation 1, the
    #: deviation floored at ``eps``), "astropt" (AstroPT's ``(x - mean) / (unbiased std + 1e-8)``) or False.
    standardize: bool | str = True
    #: Floor of the patch standard deviation (input units; ``standardize=True`` only).
    eps: float = 1e-3
    zero_bad_pixels: bool = True


@register_tokenizer("image_patches")
class ImagePatches(ARTokenizer):
    """Image -> patches in the configured order, with a learned position embedding per patch."""

    config_class = ImagePatchesConfig

    def __init__(self, config: ImagePatchesConfig, dim: int, gelu: str = "tanh") -> None:
        if config.img_size % config.patch_size:
            raise ConfigError(f"img_size {config.img_size} is not a multiple of patch_size {config.patch_size}")
        super().__init__(config, dim, gelu)
        if config.standardize not in (True, False, "astropt"):
            raise ConfigError(f"image standardize must be true, false or 'astropt', not {config.standardize!r}")
        grid = config.img_size // config.patch_size
        if config.order == "raster":
            order = list(range(grid * grid))
        elif config.order == "spiral":
            order = spiral_order(grid, grid)
        elif config.order == "astropt_spiral":
            order = astropt_spiral_order(grid)
        elif isinstance(config.order, str) or sorted(config.order) != list(range(grid * grid)):
            raise ConfigError("image order must be 'raster', 'spiral', 'astropt_spiral' or a permutation of "
                              f"0..{grid * grid - 1}")
        else:
            order = list(config.order)
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.position = nn.Parameter(torch.randn(grid * grid, dim) * 0.02)

    @property
    def token_size(self) -> int:
        cfg: ImagePatchesConfig = self.config  # type: ignore[assignment]
        return cfg.patch_size**2 * cfg.in_chans

    def tokenize(self, batch: ModalityBatch) -> Tokens:
        cfg: ImagePatchesConfig = self.config  # type: ignore[assignment]
        pixels = image_pixels(batch, cfg.in_chans, cfg.zero_bad_pixels)
        if pixels.shape[-2:] != (cfg.img_size, cfg.img_size):
            raise ConfigError(f"image tokenizer expects {cfg.img_size}x{cfg.img_size} images, got "
                              f"{tuple(pixels.shape[-2:])}; add a CenterCrop/Resize transform")
        values = patchify(pixels, cfg.patch_size)[:, self.order]
        if cfg.standardize == "astropt":
            std, mean = torch.std_mean(values, dim=-1, keepdim=True)
            values = (values - mean) / (std + 1e-8)
        elif cfg.standardize:
            mean = values.mean(dim=-1, keepdim=True)
            values = (values - mean) / values.std(dim=-1, unbiased=False, keepdim=True).clamp_min(cfg.eps)
        position = self.position.expand(len(values), -1, -1)
        return Tokens(values, _all_real(values), None, position)

    def to_image(self, values: Tensor) -> Tensor:
        """Token values (P, L, F) in sequence order -> images (P, C, H, W) (standardized patches stay so)."""
        cfg: ImagePatchesConfig = self.config  # type: ignore[assignment]
        raster = torch.empty_like(values)
        raster[:, self.order] = values
        return unpatchify(raster, cfg.patch_size, cfg.in_chans, cfg.img_size, cfg.img_size)


# -- spectra ----------------------------------------------------------------------------------------------
@dataclass
class SpectrumWindowsConfig(TokenizerConfig):
    """Windows of the flux; position from the log wavelength of the window centre, or its index."""

    #: Pixels per token.
    window: int = 20
    #: Pixels between window starts: None or ``window`` (overlapping windows would leak each target into
    #: the previous token's input, and are refused).
    stride: int | None = None
    #: "wavelength" (sinusoids of ln λ of the window centre, λ in Å) or "index" (learned, per window).
    position: str = "wavelength"
    #: Shortest and longest period of the ln λ sinusoids.
    min_period: float = 1e-3
    max_period: float = 4.0
    #: Windows with a learned index position (position "index").
    max_tokens: int = 1024


@register_tokenizer("spectrum_windows")
class SpectrumWindows(ARTokenizer):
    """Spectrum -> windows of flux (bad pixels 0 and weightless); a window without good pixels is not a token."""

    config_class = SpectrumWindowsConfig

    def __init__(self, config: SpectrumWindowsConfig, dim: int, gelu: str = "tanh") -> None:
        super().__init__(config, dim, gelu)
        if config.stride not in (None, config.window):
            raise ConfigError(f"AR spectrum windows must not overlap (stride {config.stride} != window "
                              f"{config.window}): part of each target would be in the previous token's input, "
                              "and next-token prediction would learn to copy it")
        if config.position == "wavelength":
            self.wavelength = ContinuousEncoding(dim, config.min_period, config.max_period)
        elif config.position == "index":
            self.position = nn.Parameter(torch.randn(config.max_tokens, dim) * 0.02)
        else:
            raise ConfigError(f"spectrum position must be 'wavelength' or 'index', not {config.position!r}")

    @property
    def token_size(self) -> int:
        return self.config.window  # type: ignore[attr-defined,no-any-return]

    def windows(self, x: Tensor) -> Tensor:
        """(P, L) -> (P, T, window)."""
        return unfold_windows(x, self.config.window, self.config.window)  # type: ignore[attr-defined]

    def tokenize(self, batch: ModalityBatch) -> Tokens:
        flux, _, wavelength, good = spectrum_pixels(batch)
        values = self.windows(flux.float())
        weight = self.windows(good.float())
        mask = window_tokens(good, batch.mask, self.config.window, self.config.window)  # type: ignore[attr-defined]
        if self.config.position == "index":  # type: ignore[attr-defined]
            if values.shape[1] > self.position.shape[0]:
                raise ConfigError(f"{values.shape[1]} spectrum windows, more than max_tokens={self.position.shape[0]}")
            position = self.position[: values.shape[1]].expand(len(values), -1, -1)
        else:
            waves = self.windows(wavelength.float())
            counted = (waves > 0).float()
            centre = (waves * counted).sum(-1) / counted.sum(-1).clamp_min(1)
            position = self.wavelength(centre.clamp_min(1.0).log())
        return Tokens(values, mask, weight, position)

    def to_flux(self, values: Tensor, length: int) -> Tensor:
        """Token values (P, T, window) -> flux (P, length)."""
        return values.reshape(len(values), -1)[:, :length]


# -- light curves ------------------------------------------------------------------------------------------
@dataclass
class LightCurvePointsConfig(TokenizerConfig):
    """Band vocabulary and the time encoding's period range [days]."""

    n_bands: int = 8
    min_period: float = 0.02
    max_period: float = 5000.0


@register_tokenizer("lightcurve_points")
class LightCurvePoints(ARTokenizer):
    """Observations (flux, flux_err) sorted by time; position = time encoding + band embedding."""

    config_class = LightCurvePointsConfig

    def __init__(self, config: LightCurvePointsConfig, dim: int, gelu: str = "tanh") -> None:
        super().__init__(config, dim, gelu)
        self.band = nn.Embedding(config.n_bands, dim)
        self.time = ContinuousEncoding(dim, config.min_period, config.max_period)

    @property
    def token_size(self) -> int:
        return 2

    def tokenize(self, batch: ModalityBatch) -> Tokens:
        data = batch.data
        real = batch.mask if batch.mask is not None else torch.ones_like(data["time"], dtype=torch.bool)
        time = torch.where(real, data["time"].float(), 0.0)
        order = torch.argsort(torch.where(real, time, math.inf), dim=1, stable=True)
        real, time = real.gather(1, order), time.gather(1, order)
        values = torch.stack([data["flux"], data["flux_err"]], dim=-1).float()
        values = values.gather(1, order[..., None].expand(-1, -1, 2))
        finite = real[..., None] & torch.isfinite(values)
        band = torch.where(real, data["band"].long().gather(1, order), 0)
        position = self.time(time) + self.band(band)
        return Tokens(torch.where(finite, values, 0.0), real, finite.float(), position)


# -- catalog features --------------------------------------------------------------------------------------
@dataclass
class TabularFeaturesConfig(TokenizerConfig):
    n_features: int = 16


@register_tokenizer("tabular_features")
class TabularFeatures(ARTokenizer):
    """One token per observed feature (its standardized value), with a learned embedding per feature."""

    config_class = TabularFeaturesConfig

    def __init__(self, config: TabularFeaturesConfig, dim: int, gelu: str = "tanh") -> None:
        super().__init__(config, dim, gelu)
        self.feature = nn.Parameter(torch.randn(config.n_features, dim) * 0.02)

    @property
    def token_size(self) -> int:
        return 1

    def tokenize(self, batch: ModalityBatch) -> Tokens:
        values, observed = tabular_values(batch, self.config.n_features)  # type: ignore[attr-defined]
        position = self.feature.expand(len(values), -1, -1)
        return Tokens(values.float()[..., None], observed, None, position)


# -- tokens made elsewhere ---------------------------------------------------------------------------------
@dataclass
class ExternalTokensConfig(TokenizerConfig):
    """Tokens of ``token_size`` values in ``data["tokens"]``; positions in ``data["positions"]``."""

    token_size: int = 16
    #: "index" (learned embedding of the integer position) or "coordinates" (``position_size`` real numbers
    #: per token, through an MLP or a linear layer like the values, see ``embedder``).
    position: str = "index"
    #: Rows of the learned position table (position "index").
    max_tokens: int = 1024
    #: Coordinates per token (position "coordinates").
    position_size: int = 1


@register_tokenizer("tokens")
class ExternalTokens(ARTokenizer):
    """Pre-made tokens; positions default to 0, 1, 2, ... along the sequence."""

    config_class = ExternalTokensConfig

    def __init__(self, config: ExternalTokensConfig, dim: int, gelu: str = "tanh") -> None:
        super().__init__(config, dim, gelu)
        if config.position == "index":
            self.position = nn.Embedding(config.max_tokens, dim)
        elif config.position == "coordinates":
            sizes = [config.position_size, config.hidden or 4 * dim, dim] if config.embedder == "mlp" else \
                [config.position_size, dim]
            self.position = build_mlp(sizes, gelu=gelu, bias=config.bias)
        else:
            raise ConfigError(f"token position must be 'index' or 'coordinates', not {config.position!r}")

    @property
    def token_size(self) -> int:
        return self.config.token_size  # type: ignore[attr-defined,no-any-return]

    def tokenize(self, batch: ModalityBatch) -> Tokens:
        cfg: ExternalTokensConfig = self.config  # type: ignore[assignment]
        values = batch.data["tokens"].float()
        if values.ndim != 3 or values.shape[-1] != cfg.token_size:
            raise ConfigError(f"tokens must be (P, L, {cfg.token_size}), got {tuple(values.shape)}")
        mask = batch.mask if batch.mask is not None else _all_real(values)
        positions = batch.data.get("positions")
        if cfg.position == "index":
            index = positions.long() if positions is not None else torch.arange(values.shape[1], device=values.device)
            position = self.position(index.expand(len(values), -1))
        else:
            if positions is None:
                raise ConfigError("tokens with position 'coordinates' need data['positions'] (P, L, position_size)")
            position = self.position(positions.float().reshape(len(values), values.shape[1], cfg.position_size))
        return Tokens(values, mask, None, position)
