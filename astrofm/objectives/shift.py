"""Wavelength-shift equivariance of spectra: the embedding must tell how far a spectrum was redshifted.

Each spectrum of a batch is seen twice on its own wavelength grid: as observed, and moved by a
random factor 1 + δ (ln(1 + δ) uniform in ±``max_log_shift``) and interpolated back onto the grid. Moving an
observed spectrum by 1 + δ is what a redshift (1 + z) → (1 + z)(1 + δ) does to it, within the wavelengths
both views cover; both views keep only those, so that a missing end cannot tell δ. The loss asks a learned
unit direction u of the shared space to move by ``scale`` · ln(1 + δ) between the two views:

    (u · (e_shifted − e_observed) − scale · ln(1 + δ))²,

divided by the variance of the target, so that a constant guess scores 1. Without any label, u · e becomes
a measure of ln(1 + z) read from where the lines and breaks fall, and ``scale`` (shared-space distance per
unit of ln(1 + z)) sets how much of the embedding it takes. Summed with the contrastive loss (``sum``
objective), it keeps in the spectrum embedding the redshift precision that matching spectra to images does
not ask for.

The noise stays in the observed frame: both views get, pixel by pixel, the larger of their two noise
variances (as ``ivar``, and as fresh Gaussian noise where a view had less), so that neither the sky lines
of ``ivar`` nor the smoother noise of interpolated pixels can tell how far a view was moved. (Without this,
the encoder reads δ from where the sky lines of the shifted ``ivar`` fall, which says nothing of redshift.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.objectives.base import Objective, ObjectiveOutput, register_objective, zero_loss
from astrofm.objectives.distributed import weighted_terms

if TYPE_CHECKING:
    from astrofm.data.batch import Batch
    from astrofm.model import AstroFM


@register_objective("wavelength_shift")
class WavelengthShiftObjective(Objective):
    """Regression of a spectrum's random wavelength shift from its embedding and its unshifted one's.

    Parameters
    ----------
    embed_dim:
        Width of the shared space.
    modality:
        The spectrum modality (its batch needs ``flux``, ``ivar`` and ``lambda`` [Å]).
    max_log_shift:
        Largest |ln(1 + δ)| of a shift.
    scale:
        Shared-space distance along the learned direction per unit of ln(1 + δ).
    rows:
        Use at most this many spectra of each batch (None: all), to bound the cost of the two extra passes.
    """

    def __init__(self, embed_dim: int, *, modality: str = "spectrum", max_log_shift: float = 0.1,
                 scale: float = 4.0, rows: int | None = None) -> None:
        super().__init__()
        if not 0 < max_log_shift < 1 or scale <= 0 or (rows is not None and rows < 1):
            raise ConfigError(f"wavelength_shift needs 0 < max_log_shift < 1, scale > 0 and rows >= 1, got "
                              f"max_log_shift={max_log_shift}, scale={scale}, rows={rows}")
        self.modality = modality
        self.max_log_shift = float(max_log_shift)
        self.scale = float(scale)
        self.rows = rows
        self.direction = nn.Parameter(torch.randn(embed_dim) / embed_dim**0.5)

    @classmethod
    def build(cls, model: AstroFM, **options: object) -> WavelengthShiftObjective:
        modality = str(options.get("modality", "spectrum"))
        if modality not in model.modalities:
            raise ConfigError(f"wavelength_shift: the model has no modality {modality!r} ({model.modalities})")
        return cls(model.embed_dim, **options)  # type: ignore[arg-type]

    def forward(self, model: AstroFM, batch: Batch) -> ObjectiveOutput:
        spectra = batch.modalities.get(self.modality)
        sums, counts = {}, {}
        if spectra is not None and len(spectra) > 0:
            spectra = first_rows(spectra, self.rows)
            log_shift = (torch.rand(len(spectra), device=spectra.presence.device) * 2 - 1) * self.max_log_shift
            observed, shifted = shifted_views(spectra, log_shift)
            first, second = (model.embed_modality(self.modality, view) for view in (observed, shifted))
            direction = (self.direction / self.direction.norm()).float()
            valid = (first.presence & second.presence)[spectra.presence].float()
            target = self.scale * log_shift.float()
            variance = self.scale**2 * self.max_log_shift**2 / 3  # of a uniform target
            error = (second.z.float() @ direction - first.z.float() @ direction - target) ** 2 / variance
            sums[self.modality], counts[self.modality] = (error * valid).sum(), valid.sum()
        loss, _ = weighted_terms([self.modality], sums, counts, {}, self.direction.device)
        if not sums:  # no spectrum in this batch: a zero that still reaches the spectrum encoder and head
            loss = loss + zero_loss(self) + zero_loss(model.encoders[self.modality]) + zero_loss(
                model.heads[self.modality])
            return ObjectiveOutput(loss).with_placeholders(["r2"])
        return ObjectiveOutput(loss, {"r2": 1 - loss.detach()})


def first_rows(batch: ModalityBatch, rows: int | None) -> ModalityBatch:
    """The first ``rows`` objects of a modality batch (all of them if ``rows`` is None or larger)."""
    if rows is None or len(batch) <= rows:
        return batch
    keep = batch.presence & (torch.cumsum(batch.presence.long(), 0) <= rows)
    return ModalityBatch({k: v[:rows] for k, v in batch.data.items()}, keep,
                         None if batch.mask is None else batch.mask[:rows],
                         {k: v[:rows] for k, v in batch.meta.items()})


def shifted_views(batch: ModalityBatch, log_shift: Tensor) -> tuple[ModalityBatch, ModalityBatch]:
    """The spectra as observed and moved by a factor exp(``log_shift``) (one per spectrum, (P,)) on the same
    grid, both with only the pixels both cover (the others get ``ivar`` 0 and ``flux`` 0), and both with the
    same ``ivar``.

    The shifted flux at λ is the observed flux at λ / (1 + δ), linearly interpolated between the two nearest
    pixels (weights 1 − w and w), so its noise variance is (1 − w)² σ²(λ₁) + w² σ²(λ₂). The noise of a
    spectrum belongs to the observed frame (sky lines, detector edges) and must not move with it, or it
    would tell δ: each pixel of both views gets the larger of the two variances, as ``ivar``, and each view
    the Gaussian noise that brings its own variance up to it.
    """
    data = batch.data
    if not {"flux", "ivar", "lambda"} <= set(data):
        raise ConfigError(f"shifting spectra needs 'flux', 'ivar' and 'lambda' [Å], the batch has {sorted(data)}")
    flux, ivar, wavelength = data["flux"].float(), data["ivar"].float(), data["lambda"].float()
    real = (batch.mask if batch.mask is not None else torch.ones_like(flux, dtype=torch.bool)) & (wavelength > 0)
    good = real & (ivar > 0) & torch.isfinite(flux)
    if "mask" in data:
        good = good & ~data["mask"].bool()
    count = real.sum(dim=1, keepdim=True)
    grid = torch.where(real, wavelength, torch.inf).contiguous()  # padding sorts last
    source = wavelength * torch.exp(-log_shift.float())[:, None]
    upper = torch.searchsorted(grid, source.contiguous())
    lower = (upper - 1).clamp(0, flux.shape[1] - 2)
    upper = lower + 1
    low_wave, high_wave = grid.gather(1, lower), grid.gather(1, upper)
    weight = ((source - low_wave) / (high_wave - low_wave)).nan_to_num(0.0)
    inside = real & (weight >= 0) & (weight <= 1) & (upper < count)
    covered = inside & good & good.gather(1, lower) & good.gather(1, upper)
    weight = weight.clamp(0, 1)
    variance = torch.where(good, ivar.clamp_min(1e-30).reciprocal(), 0.0)
    flux = torch.where(good, flux, 0.0)
    moved_flux = (1 - weight) * flux.gather(1, lower) + weight * flux.gather(1, upper)
    moved_variance = (1 - weight) ** 2 * variance.gather(1, lower) + weight**2 * variance.gather(1, upper)
    common = torch.maximum(variance, moved_variance)

    def view(view_flux: Tensor, view_variance: Tensor) -> ModalityBatch:
        noisy = view_flux + torch.randn_like(view_flux) * (common - view_variance).clamp_min(0).sqrt()
        fields = {**data, "flux": torch.where(covered, noisy, 0.0).to(data["flux"].dtype),
                  "ivar": torch.where(covered, common.clamp_min(1e-30).reciprocal(), 0.0).to(data["ivar"].dtype)}
        return ModalityBatch(fields, batch.presence, batch.mask, batch.meta)

    return view(flux, variance), view(moved_flux, moved_variance)
