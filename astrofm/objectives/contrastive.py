"""N-modal contrastive objective: CLIP (InfoNCE) or SigLIP over every pair of modalities.

For each pair (a, b), only objects that have both a and b take part, as rows
and as candidates (per object, not per batch). Negatives are gathered from
every DDP rank (one collective per step) and gradients flow back to each
rank's own rows; the loss is normalized by the global number of valid pairs
(:func:`~astrofm.objectives.distributed.weighted_terms`), so a 2-process run
gives every rank the loss, and the gradients, of one process on the
combined batch. The step has no data-dependent Python branches (no host
syncs besides the rank row counts under DDP).

Temperatures are learnable (one per pair, or one shared), as log logit
scales clamped to ``max_logit_scale``.

Optional *views* add a self-supervised pair per modality: two views of the
same data with random contiguous blocks of positions masked out (stretches
of a spectrum, square patches of an image; images can also be flipped and
turned by quarter turns per view). With ``complement`` the two views are
disjoint halves, else the full data faces one masked view; ``hide`` blanks
per-object fields (e.g. the overall brightness ``log_norm``) in the views so
that they cannot be matched by such a shortcut. To find its partner among
the batch from a disjoint part, the embedding must keep what every part of
the data shows (a spectrum's redshift, from lines anywhere), beyond what the
other modalities can check.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.model import Embedded
from astrofm.objectives.base import Objective, ObjectiveOutput, expand_cells, register_objective
from astrofm.objectives.distributed import gather, gather_with_grad, rank_sizes, weighted_terms, world

if TYPE_CHECKING:
    from astrofm.data.batch import Batch
    from astrofm.model import AstroFM

LOSSES = ("clip", "siglip")
VIEW_SUFFIX, REST_SUFFIX = "~view", "~rest"
#: Logit given to excluded candidates (finite, so that excluded rows stay finite too).
_EXCLUDED = -1.0e4


@register_objective("contrastive")
class ContrastiveObjective(Objective):
    """Symmetric InfoNCE (``loss="clip"``) or sigmoid loss (``loss="siglip"``) over modality pairs.

    Parameters
    ----------
    modalities:
        The model modalities to align.
    pairs:
        Pairs to align (default: every pair of ``modalities``).
    loss:
        "clip" or "siglip".
    temperature:
        Initial temperature (logit scale 1/temperature); SigLIP's usual start is 0.1.
    learn_temperature:
        Train the temperature (else fixed).
    per_pair_temperature:
        One temperature per pair (AstroM³) or one shared by all pairs.
    max_logit_scale:
        Upper clamp of the logit scale (CLIP: 100).
    siglip_bias:
        Initial learnable bias of the SigLIP logits.
    views:
        Self-supervised pairs, ``{modality: {"fraction": f, "block": n, "weight": w, "complement": c,
        "hide": [fields], "degrade": d, "tilt": t, "dihedral": r}}``: a view with a fraction ``f`` of the
        positions masked in blocks of ``n`` (positions of a sequence, n x n pixel squares of an image) against
        the full data, or with ``complement`` against the complementary view; ``hide`` lists fields zeroed in
        the views; ``degrade`` (>= 1, sequences) raises each view's noise by its own random factor up to
        ``d`` (so that S/N cannot match the views); ``tilt`` (>= 0, spectra) multiplies each view by its own
        random power law in wavelength (so that the continuum slope cannot match them; ``tilt_spectrum``);
        ``dihedral`` (images) flips and turns each view by its own random quarter turns (so that the
        orientation cannot match them); ``w`` weighs the pair's loss.
    """

    uses_embeddings = True

    def __init__(self, modalities: Sequence[str], *, pairs: Sequence[Sequence[str]] | None = None,
                 loss: str = "clip", temperature: float = 0.07, learn_temperature: bool = True,
                 per_pair_temperature: bool = True, max_logit_scale: float = 100.0,
                 siglip_bias: float = -10.0, views: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"contrastive loss must be one of {LOSSES}, not {loss!r}")
        self.modalities = list(modalities)
        chosen = [tuple(p) for p in pairs] if pairs is not None else list(itertools.combinations(self.modalities, 2))
        for pair in chosen:
            if len(pair) != 2 or pair[0] == pair[1] or any(m not in self.modalities for m in pair):
                raise ConfigError(f"invalid contrastive pair {pair}; modalities: {self.modalities}")
        defaults = {"fraction": 0.5, "block": 64, "weight": 1.0, "complement": False, "hide": [], "degrade": 1.0,
                    "tilt": 0.0, "dihedral": False}
        self.views = {m: {**defaults, **dict(o)} for m, o in (views or {}).items()}
        weights = [1.0] * len(chosen)
        for m, options in self.views.items():
            unknown = sorted(set(options) - set(defaults))
            if (m not in self.modalities or not 0 < options["fraction"] < 1 or options["block"] < 1
                    or options["degrade"] < 1 or options["tilt"] < 0 or unknown):
                raise ConfigError(f"invalid view {m}: {options} (a model modality, 0 < fraction < 1, block >= 1, "
                                  f"degrade >= 1, tilt >= 0, options {sorted(defaults)})")
            chosen.append((m + VIEW_SUFFIX, m + REST_SUFFIX) if options["complement"] else (m, m + VIEW_SUFFIX))
            weights.append(float(options["weight"]))
        if not chosen:
            raise ConfigError("a contrastive objective needs at least two modalities, or a view")
        self.pairs: list[tuple[str, str]] = chosen  # type: ignore[assignment]
        self.weights = weights
        self.names = list(dict.fromkeys([*self.modalities, *(m for pair in chosen for m in pair)]))
        self.loss = loss
        self.max_log_scale = math.log(max_logit_scale)
        keys = [self._key(p) for p in self.pairs] if per_pair_temperature else ["shared"]
        self.per_pair = per_pair_temperature
        start = torch.tensor(math.log(1.0 / temperature))
        self.log_scale = nn.ParameterDict(
            {k: nn.Parameter(start.clone(), requires_grad=learn_temperature) for k in keys})
        self.bias = nn.ParameterDict(
            {k: nn.Parameter(torch.tensor(float(siglip_bias))) for k in keys}) if loss == "siglip" else None

    @classmethod
    def build(cls, model: AstroFM, **options: Any) -> ContrastiveObjective:
        options.setdefault("modalities", model.modalities)
        modalities = options.pop("modalities")
        return cls(modalities, **options)

    @staticmethod
    def _key(pair: tuple[str, str]) -> str:
        return f"{pair[0]}__{pair[1]}"

    def logit_scale(self, pair: tuple[str, str]) -> Tensor:
        """exp(clamped log scale) of a pair."""
        key = self._key(pair) if self.per_pair else "shared"
        return self.log_scale[key].clamp(max=self.max_log_scale).exp()

    def _embed(self, model: AstroFM, batch: Batch, embedded: Mapping[str, Embedded] | None
               ) -> dict[str, tuple[Tensor, Tensor]]:
        """(B, D) embeddings (0 where absent) and presence of every modality and view in the batch."""
        embedded = embedded if embedded is not None else model(batch, self.modalities)
        out = {m: (embedded[m].scatter(0.0), embedded[m].presence) for m in self.modalities if m in embedded}
        for m, options in self.views.items():
            if m not in batch.modalities:
                continue
            view, rest = masked_views(batch.modalities[m], options["fraction"], int(options["block"]),
                                      options["hide"], float(options["degrade"]), float(options["tilt"]),
                                      bool(options["dihedral"]))
            parts = [(VIEW_SUFFIX, view), (REST_SUFFIX, rest)] if options["complement"] else [(VIEW_SUFFIX, view)]
            for suffix, part in parts:  # a view without a real token is no pair
                view_embedded = model.embed_modality(m, part)
                out[m + suffix] = (view_embedded.scatter(0.0), view_embedded.presence)
        return out

    def forward(self, model: AstroFM, batch: Batch, embedded: Mapping[str, Embedded] | None = None
                ) -> ObjectiveOutput:
        vectors = self._embed(model, batch, embedded)
        n = len(batch)
        device = next(model.parameters()).device
        dim = model.embed_dim
        names = self.names
        z_local, present_local = [], []
        for m in names:
            if m in vectors:
                z_local.append(vectors[m][0])
                present_local.append(vectors[m][1].to(device))
            else:  # requires grad so that every rank joins the backward collective
                z_local.append(torch.zeros(n, dim, device=device, requires_grad=True))
                present_local.append(torch.zeros(n, dtype=torch.bool, device=device))
        z = torch.stack(z_local, dim=1)  # (B, M, D)
        present = torch.stack(present_local, dim=1)  # (B, M)
        sizes = rank_sizes(n, device)
        rank, _ = world()
        z_all = gather_with_grad(z, sizes)  # (N, M, D)
        present_all = gather(present.to(torch.uint8), sizes).bool()
        targets = torch.arange(n, device=device) + sum(sizes[:rank])
        sums, counts, metrics = {}, {}, {}
        pair_names = [f"{a}-{b}" for a, b in self.pairs]
        for pair, name in zip(self.pairs, pair_names):
            a, b = (names.index(m) for m in pair)
            valid = present[:, a] & present[:, b]
            valid_all = present_all[:, a] & present_all[:, b]
            if self.loss == "clip":
                total, accuracy = self._clip(pair, z[:, a], z[:, b], z_all[:, a], z_all[:, b], valid, valid_all,
                                             targets)
            else:
                total, accuracy = self._siglip(pair, z[:, a], z_all[:, b], valid, valid_all, targets)
            sums[name], counts[name] = total, valid.sum()
            metrics[f"acc/{name}"] = accuracy.detach()
            metrics[f"logit_scale/{name}"] = self.logit_scale(pair).detach()
            metrics[f"pairs/{name}"] = valid_all.sum().detach().float()
        loss, _ = weighted_terms(pair_names, sums, counts, dict(zip(pair_names, self.weights)), device)
        return ObjectiveOutput(loss, metrics)

    def _clip(self, pair: tuple[str, str], za: Tensor, zb: Tensor, za_all: Tensor, zb_all: Tensor, valid: Tensor,
              valid_all: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Sum over local valid rows of the symmetric InfoNCE terms, and the local a->b top-1 accuracy."""
        scale = self.logit_scale(pair)
        excluded = ~valid_all[None, :]
        logits_ab = (scale * za @ zb_all.T).masked_fill(excluded, _EXCLUDED)
        logits_ba = (scale * zb @ za_all.T).masked_fill(excluded, _EXCLUDED)
        terms = 0.5 * (F.cross_entropy(logits_ab, targets, reduction="none")
                       + F.cross_entropy(logits_ba, targets, reduction="none"))
        weight = valid.float()
        hits = (logits_ab.argmax(dim=-1) == targets).float() * weight
        return (terms * weight).sum(), hits.sum() / weight.sum().clamp_min(1)

    def _siglip(self, pair: tuple[str, str], za: Tensor, zb_all: Tensor, valid: Tensor, valid_all: Tensor,
                targets: Tensor) -> tuple[Tensor, Tensor]:
        """Sum over local valid rows x global valid candidates of the sigmoid loss, and top-1 accuracy."""
        key = self._key(pair) if self.per_pair else "shared"
        logits = self.logit_scale(pair) * za @ zb_all.T + self.bias[key]  # type: ignore[index]
        columns = torch.arange(len(zb_all), device=za.device)
        labels = (columns[None, :] == targets[:, None]).float() * 2 - 1
        both = (valid[:, None] & valid_all[None, :]).float()
        total = (-F.logsigmoid(labels * logits) * both).sum()
        weight = valid.float()
        hits = (logits.masked_fill(~valid_all[None, :], _EXCLUDED).argmax(dim=-1) == targets).float() * weight
        return total, hits.sum() / weight.sum().clamp_min(1)


def masked_views(batch: ModalityBatch, fraction: float, block: int, hide: Sequence[str] = (), degrade: float = 1.0,
                 tilt: float = 0.0, dihedral: bool = False) -> tuple[ModalityBatch, ModalityBatch]:
    """Two complementary views: a random ``fraction`` of the positions masked in contiguous blocks of
    ``block`` (sequences: positions; images, flux (P, C, H, W): ``block`` x ``block`` pixel squares, in the
    ``mask`` field), and the rest; the fields in ``hide`` are zeroed in both. With ``degrade`` > 1 each
    sequence view's noise is raised by its own random factor (``degrade_noise``), so that the views' S/N
    differ; with ``tilt`` > 0 each view's continuum gets its own random slope (``tilt_spectrum``); with
    ``dihedral`` each image view gets its own random flip and quarter turns (``random_dihedral``)."""
    data = {k: torch.zeros_like(v) if k in hide else v for k, v in batch.data.items()}
    if batch.mask is None and data.get("flux", torch.empty(0)).ndim == 4:
        if degrade > 1 or tilt > 0:
            raise ConfigError("degrade and tilt views need a sequence modality with noise in the flux's units; "
                              "image views take fraction, block, complement, hide and dihedral")
        return _image_views(batch, data, fraction, block, dihedral)
    if batch.mask is None:
        raise ConfigError("views need a sequence modality (a batch with a mask) or images (flux (P, C, H, W))")
    if dihedral:
        raise ConfigError("dihedral views need images (flux (P, C, H, W))")
    keep = block_keep(batch.mask.shape[0], batch.mask.shape[1:], block, fraction, batch.mask.device)

    def perturbed(view: dict[str, Tensor]) -> dict[str, Tensor]:
        view = degrade_noise(view, degrade) if degrade > 1 else view
        return tilt_spectrum(view, tilt) if tilt > 0 else view

    return (ModalityBatch(perturbed(data), batch.presence, batch.mask & keep, batch.meta),
            ModalityBatch(perturbed(data), batch.presence, batch.mask & ~keep, batch.meta))


def _image_views(batch: ModalityBatch, data: dict[str, Tensor], fraction: float, block: int, dihedral: bool
                 ) -> tuple[ModalityBatch, ModalityBatch]:
    """``masked_views`` of images: ``block`` x ``block`` pixel squares masked in the ``mask`` field."""
    flux = data["flux"]
    keep = block_keep(len(flux), flux.shape[-2:], block, fraction, flux.device)[:, None]
    good = data["mask"].bool() if "mask" in data else torch.ones_like(flux, dtype=torch.bool)
    first, second = {**data, "mask": good & keep}, {**data, "mask": good & ~keep}
    if dihedral:
        first, second = random_dihedral(first), random_dihedral(second)
    return (ModalityBatch(first, batch.presence, None, batch.meta),
            ModalityBatch(second, batch.presence, None, batch.meta))


def block_keep(n: int, shape: Sequence[int], block: int, fraction: float, device: torch.device) -> Tensor:
    """(n, *shape) bool: False on a random ``fraction`` of the cells of ``block`` positions per axis."""
    cells = torch.rand(n, *(-(-size // block) for size in shape), device=device) >= fraction
    return expand_cells(cells, block, shape)


def random_dihedral(data: dict[str, Tensor]) -> dict[str, Tensor]:
    """Images (every (P, C, H, W) field of ``data``, H = W) with each object flipped left-right with
    probability 1/2, then turned by its own random number of quarter turns; the same for all its fields."""
    square = [k for k, v in data.items() if v.ndim == 4 and v.shape[-1] == v.shape[-2]]
    if not square:
        return data
    n, device = len(data[square[0]]), data[square[0]].device
    flip = torch.rand(n, device=device) < 0.5
    turns = torch.randint(4, (n,), device=device)
    rows = torch.arange(n, device=device)
    out = dict(data)
    for key in square:
        flipped = torch.where(flip[:, None, None, None], data[key].flip(-1), data[key])
        out[key] = torch.stack([flipped.rot90(k, dims=(-2, -1)) for k in range(4)])[turns, rows]
    return out


def degrade_noise(data: dict[str, Tensor], most: float) -> dict[str, Tensor]:
    """The data with each object's noise raised by a factor f, log-uniform in [1, ``most``]: ``flux`` gets
    Gaussian noise of σ·sqrt(f² - 1) (σ from ``ivar`` or ``flux_err``), and ``ivar`` / f² (``flux_err`` · f)."""
    flux = data["flux"]
    factor = torch.exp(torch.rand(len(flux), *[1] * (flux.ndim - 1), device=flux.device) * math.log(most))
    if "ivar" in data:
        ivar = data["ivar"]
        sigma = torch.where(ivar > 0, ivar.float().clamp_min(1e-30).rsqrt(), 0.0)
        noise = {"ivar": (ivar / factor**2).to(ivar.dtype)}
    elif "flux_err" in data:
        sigma = data["flux_err"].float().clamp_min(0)
        noise = {"flux_err": (data["flux_err"] * factor).to(data["flux_err"].dtype)}
    else:
        raise ConfigError(f"degrading a view's noise needs 'ivar' or 'flux_err', the batch has {sorted(data)}")
    extra = torch.randn_like(flux, dtype=torch.float32) * sigma * (factor**2 - 1).sqrt()
    return {**data, **noise, "flux": (flux.float() + extra).to(flux.dtype)}


def tilt_spectrum(data: dict[str, Tensor], sigma: float) -> dict[str, Tensor]:
    """The spectra times a random power law per object, exp(s·x) with s ~ N(0, ``sigma``) and x = ln λ
    rescaled to [-1/2, 1/2] over the object's wavelengths (so s is the ln flux ratio between its red and
    blue ends); ``ivar`` is divided by the square of the same factor, so S/N per pixel is unchanged."""
    if "lambda" not in data or "ivar" not in data:
        raise ConfigError(f"tilting a view needs spectra with 'lambda' [Å] and 'ivar', the batch has {sorted(data)}")
    flux, wavelength = data["flux"], data["lambda"].float()
    real = wavelength > 0
    log_wave = torch.where(real, wavelength.clamp_min(1e-30).log(), 0.0)
    low = torch.where(real, log_wave, math.inf).amin(dim=-1, keepdim=True)
    high = torch.where(real, log_wave, -math.inf).amax(dim=-1, keepdim=True)
    centred = torch.where(real, (log_wave - 0.5 * (low + high)) / (high - low).clamp_min(1e-6), 0.0)
    slope = torch.randn(len(flux), 1, device=flux.device) * sigma
    factor = (slope * centred).exp()
    return {**data, "flux": (flux.float() * factor).to(flux.dtype),
            "ivar": (data["ivar"].float() / factor**2).to(data["ivar"].dtype)}
