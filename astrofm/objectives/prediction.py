"""Prediction from embeddings: decode a modality's coarse content from an object's shared embedding.

For each (source, target) pair an MLP decoder (owned by the objective, not part of the model) maps
the source modality's unit embedding (D) to a fixed-size summary of the target modality's
preprocessed data, and the loss is the weighted mean squared error (or Huber) of that summary:

- spectrum: the flux averaged in ``bins`` log-spaced wavelength bins over ``wavelength_range`` Å
  (inverse-variance weighted over good pixels; a bin's weight is its fraction of good pixels), so
  that any wavelength grid gives the same summary;
- image (``image_vit``): the pixels averaged to a ``grid`` x ``grid`` map per band (bad pixels zeroed,
  as the encoder sees them);
- tabular: the feature values (weight 1 where observed).

Summed with the contrastive loss (``sum`` objective), the decoders make each embedding keep what
predicts the data itself rather than only what tells an object from the others of a batch:
``[spectrum, spectrum]`` asks the spectrum embedding for the continuum shape and the position of
every break and line (hence redshift); ``[image, spectrum]`` asks the image embedding for the
spectrum, i.e. for the colours that pin down where the 4000 Å break falls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.modalities import FeatureTokenizerEncoder, ModalityEncoder, SpectrumEncoder, ViTImageEncoder
from astrofm.modalities.image import image_pixels
from astrofm.modalities.spectrum import spectrum_pixels
from astrofm.modalities.tabular import tabular_values
from astrofm.objectives.autoregressive import REGRESSION_LOSSES, regression_loss
from astrofm.objectives.base import Objective, ObjectiveOutput, register_objective, zero_loss
from astrofm.objectives.distributed import weighted_terms

if TYPE_CHECKING:
    from astrofm.data.batch import Batch
    from astrofm.model import AstroFM, Embedded

#: A target summary: (values (P, K), weights (P, K)) of the P objects that have the modality.
Summary = tuple[Tensor, Tensor]


def spectrum_summary(batch: ModalityBatch, bins: int, wavelength_range: tuple[float, float]) -> Summary:
    """Flux averaged in ``bins`` log-spaced wavelength bins spanning ``wavelength_range`` (Å), inverse-variance
    weighted over good pixels; weight: the bin's fraction of good pixels (0 for a bin the spectrum misses)."""
    flux, _, wavelength, good = spectrum_pixels(batch)
    low, high = wavelength_range
    ivar = batch.data["ivar"].float().clamp_min(0) if "ivar" in batch.data else torch.ones_like(flux)
    position = torch.log(wavelength.clamp_min(1e-6) / low) / math.log(high / low)
    inside = (wavelength > 0) & (position >= 0) & (position < 1)
    index = (position.clamp(0, 1 - 1e-7) * bins).long()
    ivar = torch.where(good & inside, ivar, 0.0)

    def per_bin(values: Tensor) -> Tensor:
        return values.new_zeros(len(values), bins).scatter_add_(1, index, values)

    total_ivar = per_bin(ivar)
    mean = per_bin(ivar * flux.float()) / total_ivar.clamp_min(1e-20)
    fraction = per_bin((good & inside).float()) / per_bin(inside.float()).clamp_min(1)
    has_data = total_ivar > 0
    return torch.where(has_data, mean, 0.0), torch.where(has_data, fraction, 0.0)


def image_summary(encoder: ViTImageEncoder, batch: ModalityBatch, grid: int) -> Summary:
    """Pixels averaged to a ``grid`` x ``grid`` map per band, flattened (bands x grid²), weight 1."""
    cfg = encoder.config
    pixels = image_pixels(batch, cfg.in_chans, cfg.zero_bad_pixels)  # type: ignore[attr-defined]
    values = F.adaptive_avg_pool2d(pixels, grid).flatten(1)
    return values, torch.ones_like(values)


def tabular_summary(encoder: FeatureTokenizerEncoder, batch: ModalityBatch) -> Summary:
    """The feature values, weight 1 where observed."""
    values, observed = tabular_values(batch, encoder.config.n_features)  # type: ignore[attr-defined]
    return values.float(), observed.float()


def summarizer(encoder: ModalityEncoder, modality: str, *, bins: int, wavelength_range: tuple[float, float],
               grid: int) -> tuple[int, Callable[[ModalityBatch], Summary]]:
    """(summary size K, function batch -> summary) of a target modality's encoder."""
    if isinstance(encoder, SpectrumEncoder):
        return bins, lambda batch: spectrum_summary(batch, bins, wavelength_range)
    if isinstance(encoder, ViTImageEncoder):
        return encoder.config.in_chans * grid**2, lambda batch: image_summary(encoder, batch, grid)  # type: ignore[attr-defined]
    if isinstance(encoder, FeatureTokenizerEncoder):
        return encoder.config.n_features, lambda batch: tabular_summary(encoder, batch)  # type: ignore[attr-defined]
    raise ConfigError(f"embedding prediction cannot summarize the {type(encoder).__name__} of modality "
                      f"'{modality}'; supported targets: spectrum, image_vit, tabular encoders")


def _pair_key(source: str, target: str) -> str:
    return f"{source}__{target}"


@register_objective("predict")
class EmbeddingPredictionObjective(Objective):
    """Decode each target modality's summary from a source modality's unit embedding (MLP, one per pair).

    Parameters
    ----------
    decoders:
        (source, target) -> (embedding dim, summary size, summary function); built by :meth:`build`.
    hidden:
        Width of each decoder's hidden layer.
    loss:
        "mse" or "huber".
    delta:
        Huber transition point.
    """

    uses_embeddings = True

    def __init__(self, decoders: Mapping[tuple[str, str], tuple[int, int, Callable[[ModalityBatch], Summary]]], *,
                 hidden: int = 512, loss: str = "mse", delta: float = 1.0) -> None:
        super().__init__()
        if loss not in REGRESSION_LOSSES:
            raise ConfigError(f"prediction loss must be one of {REGRESSION_LOSSES}, not {loss!r}")
        if not decoders:
            raise ConfigError("embedding prediction needs at least one (source, target) pair")
        self.pairs = list(decoders)
        self.loss = loss
        self.delta = delta
        self.summaries = {target: summary for (_, target), (_, _, summary) in decoders.items()}
        self.decoders = nn.ModuleDict({
            _pair_key(*pair): nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, size))
            for pair, (dim, size, _) in decoders.items()})

    @classmethod
    def build(cls, model: AstroFM, *, pairs: Sequence[Sequence[str]], bins: int = 64,
              wavelength_range: Sequence[float] = (3600.0, 9824.0), grid: int = 4, **options: Any
              ) -> EmbeddingPredictionObjective:
        """``pairs``: [source, target] modalities; ``bins`` and ``wavelength_range`` (Å): a spectrum target's
        log-spaced wavelength bins; ``grid``: an image target's map size (pixels averaged to grid x grid)."""
        low, high = (float(v) for v in wavelength_range)
        if not 0 < low < high or bins < 1 or grid < 1:
            raise ConfigError(f"prediction needs 0 < wavelength_range[0] < wavelength_range[1] (Å), bins >= 1 and "
                              f"grid >= 1; got {list(wavelength_range)}, bins={bins}, grid={grid}")
        decoders = {}
        for pair in pairs:
            if len(pair) != 2 or any(m not in model.modalities for m in pair):
                raise ConfigError(f"invalid prediction pair {list(pair)}: [source, target] of the model modalities "
                                  f"{list(model.modalities)}")
            source, target = pair
            size, summary = summarizer(model.encoder(target), target, bins=bins, wavelength_range=(low, high),
                                       grid=grid)
            decoders[(source, target)] = (model.embed_dim, size, summary)
        return cls(decoders, **options)

    def forward(self, model: AstroFM, batch: Batch, embedded: Mapping[str, Embedded] | None = None
                ) -> ObjectiveOutput:
        sources = list(dict.fromkeys(source for source, _ in self.pairs))
        embedded = embedded if embedded is not None else model(batch, sources)
        summaries = {target: (batch.modalities[target].presence, self.summaries[target](batch.modalities[target]))
                     for target in self.summaries if target in batch.modalities}
        sums, counts, metrics = {}, {}, {}
        pairs = [f"{source}->{target}" for source, target in self.pairs]
        for (source, target), name in zip(self.pairs, pairs):
            if source not in embedded or target not in summaries:
                continue
            source_rows = embedded[source].rows
            target_present, (values, weight) = summaries[target]
            both = embedded[source].presence & target_present  # (B,)
            z = embedded[source].z[both[source_rows]]
            predicted = self.decoders[_pair_key(source, target)](z)
            values, weight = values[both[target_present]], weight[both[target_present]]
            elementwise = regression_loss(predicted, values, self.loss, self.delta)
            sums[name], counts[name] = (elementwise * weight).sum(), weight.sum()
            metrics[f"r2/{name}"] = _explained(predicted.detach().float(), values, weight)
        loss, means = weighted_terms(pairs, sums, counts, {}, next(self.parameters()).device)
        if not sums:  # no pair in this batch: a zero that still reaches every decoder
            loss = loss + zero_loss(self.decoders)
        metrics.update({f"loss/{name}": mean.detach() for name, mean in means.items()})
        return ObjectiveOutput(loss, metrics).with_placeholders(f"{kind}/{name}" for name in pairs
                                                                 for kind in ("loss", "r2"))


def _explained(predicted: Tensor, values: Tensor, weight: Tensor) -> Tensor:
    """Weighted fraction of the summaries' variance (about their batch mean per element) the decoder explains."""
    total = weight.sum(dim=0).clamp_min(1e-12)
    mean = (values * weight).sum(dim=0) / total
    spread = ((values - mean) ** 2 * weight).sum()
    return 1 - ((predicted - values) ** 2 * weight).sum() / spread.clamp_min(1e-12)
