"""Masked modelling for ``AstroFM`` encoders: hide a fraction of a modality's tokens, reconstruct them.

For each chosen modality a random ``mask_ratio`` of each object's real tokens is hidden in the
*input*, so the encoder's own tokenizer, positions and masks stay in charge:

- image (``image_vit``): the pixels of hidden patches are zeroed (SimMIM-style: the token keeps
  its position and a constant content);
- spectrum (``spectrum``): the pixels of hidden windows are flagged bad, so the windows carry
  only their wavelength and leave attention as keys (MAE-style: visible windows never see them,
  hidden ones query the visible ones);
- light curve (``lightcurve``): flux and error of hidden observations are zeroed (time and band kept);
- tabular (``tabular``): hidden features are marked unobserved (their feature embedding remains).

A linear head per modality (owned by the objective, not part of the model) maps the encoder's
output token to the hidden content - the patch pixels, the window's flux, the observation's flux,
the feature value - and the loss (MSE or Huber) is the mean over hidden tokens only (good pixels
only for spectra; with ``noise_weighted``, weighted by ivar or 1/flux_err²: a χ²). The total is the
weighted mean of the modalities' losses. Use it alone or summed with the contrastive loss through the
``sum`` objective.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from astrofm.ar.tokenizers import patchify
from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.modalities import (
    FeatureTokenizerEncoder,
    LightCurveEncoder,
    ModalityEncoder,
    SpectrumEncoder,
    ViTImageEncoder,
)
from astrofm.modalities.image import image_pixels
from astrofm.modalities.spectrum import spectrum_pixels, window_tokens
from astrofm.modalities.tabular import tabular_values
from astrofm.objectives.autoregressive import REGRESSION_LOSSES, regression_loss
from astrofm.objectives.base import Objective, ObjectiveOutput, expand_cells, register_objective, zero_loss
from astrofm.objectives.distributed import weighted_terms

if TYPE_CHECKING:
    from astrofm.data.batch import Batch
    from astrofm.model import AstroFM


@dataclass
class MaskTargets:
    """What to reconstruct: token contents (P, L, F), their weights, and which tokens are real."""

    values: Tensor
    weight: Tensor | None
    real: Tensor  # (P, L) bool


def choose_hidden(real: Tensor, ratio: float) -> Tensor:
    """(P, L) bool: ``round(ratio * n_real)`` random real tokens per row (at least 1, at most n_real - 1)."""
    n_real = real.sum(dim=1)
    count = torch.minimum((ratio * n_real.float()).round().long().clamp_min(1), (n_real - 1).clamp_min(0))
    noise = torch.rand(real.shape, device=real.device).masked_fill(~real, 2.0)
    rank = noise.argsort(dim=1).argsort(dim=1)
    return real & (rank < count[:, None])


def _image(encoder: ViTImageEncoder, batch: ModalityBatch) -> tuple[MaskTargets, Callable[[Tensor], ModalityBatch]]:
    cfg = encoder.config
    pixels = image_pixels(batch, cfg.in_chans, cfg.zero_bad_pixels)  # type: ignore[attr-defined]
    p = cfg.patch_size  # type: ignore[attr-defined]
    values = patchify(pixels, p)
    grid_w = pixels.shape[-1] // p

    def hide(hidden: Tensor) -> ModalityBatch:
        keep = ~expand_cells(hidden.reshape(len(hidden), -1, grid_w), p, pixels.shape[-2:])
        data = {**batch.data, "flux": batch.data["flux"] * keep[:, None].to(batch.data["flux"].dtype)}
        return ModalityBatch(data, batch.presence, batch.mask, batch.meta)

    real = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
    return MaskTargets(values, None, real), hide


def _spectrum(encoder: SpectrumEncoder, batch: ModalityBatch, noise_weighted: bool = False
              ) -> tuple[MaskTargets, Callable[[Tensor], ModalityBatch]]:
    flux, _, _, good = spectrum_pixels(batch)
    pixel_weight = good.float()
    if noise_weighted and "ivar" in batch.data:
        pixel_weight = torch.where(good, batch.data["ivar"].float().clamp_min(0), 0.0)
    values, weight = encoder.windows(flux.float()), encoder.windows(pixel_weight)
    window, stride, length = encoder.config.window, encoder.stride, flux.shape[1]  # type: ignore[attr-defined]

    def hide(hidden: Tensor) -> ModalityBatch:
        starts = torch.arange(hidden.shape[1], device=hidden.device) * stride
        pixels = (starts[:, None] + torch.arange(window, device=hidden.device)).reshape(-1)
        hit = torch.zeros(len(hidden), int(pixels.max()) + 1, device=hidden.device)
        hit.scatter_add_(1, pixels.expand(len(hidden), -1), hidden.float().repeat_interleave(window, dim=1))
        bad = hit[:, :length] > 0
        if "mask" in batch.data:
            bad = bad | batch.data["mask"].bool()
        return ModalityBatch({**batch.data, "mask": bad}, batch.presence, batch.mask, batch.meta)

    return MaskTargets(values, weight, window_tokens(good, batch.mask, window, stride)), hide


def _lightcurve(encoder: LightCurveEncoder, batch: ModalityBatch, noise_weighted: bool = False
                ) -> tuple[MaskTargets, Callable[[Tensor], ModalityBatch]]:
    flux = batch.data["flux"].float()
    real = batch.mask if batch.mask is not None else torch.ones_like(flux, dtype=torch.bool)
    finite = real & torch.isfinite(flux)
    weight = finite.float()
    if noise_weighted:
        error = batch.data["flux_err"].float()
        weight = torch.where(finite & (error > 0), 1.0 / error.clamp_min(1e-30).square(), 0.0)

    def hide(hidden: Tensor) -> ModalityBatch:
        data = {**batch.data, "flux": batch.data["flux"].masked_fill(hidden, 0.0),
                "flux_err": batch.data["flux_err"].masked_fill(hidden, 0.0)}
        return ModalityBatch(data, batch.presence, batch.mask, batch.meta)

    values = torch.where(finite, flux, 0.0)[..., None]
    return MaskTargets(values, weight[..., None], real), hide


def _tabular(encoder: FeatureTokenizerEncoder, batch: ModalityBatch
             ) -> tuple[MaskTargets, Callable[[Tensor], ModalityBatch]]:
    values, observed = tabular_values(batch, encoder.config.n_features)  # type: ignore[attr-defined]

    def hide(hidden: Tensor) -> ModalityBatch:
        visible = observed & ~hidden
        data = {**batch.data, "observed": visible} if "observed" in batch.data else batch.data
        return ModalityBatch(data, batch.presence, visible, batch.meta)

    return MaskTargets(values.float()[..., None], None, observed), hide


#: Encoder class -> (token size from the encoder, targets and hiding function).
#: The spectrum and light-curve maskers also take ``noise_weighted``.
MASKERS: dict[type[ModalityEncoder], tuple[Callable[[Any], int], Callable[..., Any]]] = {
    ViTImageEncoder: (lambda e: e.config.patch_size**2 * e.config.in_chans, _image),
    SpectrumEncoder: (lambda e: e.config.window, _spectrum),
    LightCurveEncoder: (lambda e: 1, _lightcurve),
    FeatureTokenizerEncoder: (lambda e: 1, _tabular),
}
NOISE_WEIGHTED = (SpectrumEncoder, LightCurveEncoder)


def _masker(encoder: ModalityEncoder, modality: str) -> tuple[Callable[[Any], int], Callable[..., Any]]:
    for cls, masker in MASKERS.items():
        if isinstance(encoder, cls):
            return masker
    raise ConfigError(f"masked modelling does not support the {type(encoder).__name__} of modality '{modality}'; "
                      f"supported: {[c.__name__ for c in MASKERS]}")


@register_objective("masked")
class MaskedObjective(Objective):
    """Masked reconstruction of hidden tokens for the chosen modalities of an ``AstroFM``.

    Parameters
    ----------
    heads:
        Modality -> (encoder width, values per token); built by :meth:`build` from the model.
    mask_ratio:
        Fraction of each object's real tokens hidden (one number, or one per modality).
    loss:
        "mse" or "huber".
    delta:
        Huber transition point.
    weights:
        Weight of each modality's loss (default 1 each).
    noise_weighted:
        Weigh each hidden spectrum pixel by its ivar and each hidden light-curve point by 1/flux_err², so
        that the loss is a χ² and the noise of faint objects (unpredictable by construction) does not
        dominate it. Only for spectrum and light-curve modalities, whose data carry their noise.
    """

    def __init__(self, heads: Mapping[str, tuple[int, int]], *, mask_ratio: float | Mapping[str, float] = 0.5,
                 loss: str = "mse", delta: float = 1.0, weights: Mapping[str, float] | None = None,
                 noise_weighted: bool = False) -> None:
        super().__init__()
        if loss not in REGRESSION_LOSSES:
            raise ConfigError(f"masked loss must be one of {REGRESSION_LOSSES}, not {loss!r}")
        ratios = dict(mask_ratio) if isinstance(mask_ratio, Mapping) else dict.fromkeys(heads, float(mask_ratio))
        if set(ratios) != set(heads) or not all(0 < r < 1 for r in ratios.values()):
            raise ConfigError(f"mask_ratio must be in (0, 1) for each of {sorted(heads)}, got {ratios}")
        self.modalities = list(heads)
        self.ratios = ratios
        self.loss = loss
        self.delta = delta
        self.weights = dict(weights or {})
        self.noise_weighted = noise_weighted
        self.heads = nn.ModuleDict({name: nn.Linear(width, size) for name, (width, size) in heads.items()})

    @classmethod
    def build(cls, model: AstroFM, *, modalities: Sequence[str] | None = None, **options: Any) -> MaskedObjective:
        names = list(modalities or [m for m in model.modalities if _supported(model.encoder(m))])
        heads = {}
        for name in names:
            if name not in model.modalities:
                raise ConfigError(f"masked modality '{name}' is not a model modality {list(model.modalities)}")
            encoder = model.encoder(name)
            size, _ = _masker(encoder, name)
            if options.get("noise_weighted") and not isinstance(encoder, NOISE_WEIGHTED):
                raise ConfigError(f"noise_weighted masked modelling needs per-pixel noise; the "
                                  f"{type(encoder).__name__} of modality '{name}' has none: list only spectrum and "
                                  f"light-curve modalities in 'modalities'")
            heads[name] = (encoder.out_dim, size(encoder))
        if not heads:
            raise ConfigError("masked modelling needs at least one image_vit, spectrum, lightcurve or tabular encoder")
        return cls(heads, **options)

    def forward(self, model: AstroFM, batch: Batch) -> ObjectiveOutput:
        sums, counts = {}, {}
        for name in self.modalities:
            if name not in batch.modalities:
                continue
            mb = batch.modalities[name]
            encoder = model.encoder(name)
            _, masker = _masker(encoder, name)
            targets, hide = masker(encoder, mb, **({"noise_weighted": True} if self.noise_weighted else {}))
            hidden = choose_hidden(targets.real, self.ratios[name])
            output = encoder(hide(hidden))
            tokens = output.tokens[:, -hidden.shape[1]:]  # without a context token in front
            predicted = self.heads[name](tokens)
            elementwise = regression_loss(predicted, targets.values, self.loss, self.delta)
            weight = hidden[..., None].float().expand_as(elementwise)
            if targets.weight is not None:
                weight = weight * targets.weight
            sums[name], counts[name] = (elementwise * weight).sum(), weight.sum()
        loss, means = weighted_terms(self.modalities, sums, counts, self.weights, next(self.parameters()).device)
        if not sums:  # none of the modalities in this batch: a zero that still reaches every head
            loss = loss + zero_loss(self.heads)
        metrics = {f"loss/{name}": mean.detach() for name, mean in means.items()}
        return ObjectiveOutput(loss, metrics).with_placeholders(f"loss/{name}" for name in self.modalities)


def _supported(encoder: ModalityEncoder) -> bool:
    return any(isinstance(encoder, cls) for cls in MASKERS)

