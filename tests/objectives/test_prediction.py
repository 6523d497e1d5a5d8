"""Prediction from embeddings: target summaries, what counts in the loss, one shared encoding in a sum."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.objectives import create_objective
from astrofm.objectives.prediction import spectrum_summary
from tests.modalities.factories import raw_samples, tiny_model

RANGE = (4000.0, 8000.0)


def _spectrum(wavelength: torch.Tensor, flux: torch.Tensor, ivar: torch.Tensor, bad: torch.Tensor | None = None
              ) -> ModalityBatch:
    data = {"flux": flux, "ivar": ivar, "lambda": wavelength.expand_as(flux).clone()}
    if bad is not None:
        data["mask"] = bad
    return ModalityBatch(data, torch.ones(len(flux), dtype=torch.bool), torch.ones_like(flux, dtype=torch.bool))


def test_spectrum_summary_is_the_inverse_variance_mean_in_log_wavelength_bins() -> None:
    wavelength = torch.linspace(3500.0, 8500.0, 5001)
    flux = torch.log(wavelength)[None].repeat(2, 1)
    ivar = torch.rand(2, 5001) + 0.5
    bad = torch.zeros(2, 5001, dtype=torch.bool)
    bad[1, ::3] = True
    flux[1, ::3] = 1e6  # bad pixels must not count
    values, weight = spectrum_summary(_spectrum(wavelength, flux, ivar, bad), 4, RANGE)
    edges = RANGE[0] * (RANGE[1] / RANGE[0]) ** (torch.arange(5) / 4)
    for b in range(4):
        inside = (wavelength >= edges[b]) & (wavelength < edges[b + 1])
        w = ivar[0] * inside
        torch.testing.assert_close(values[0, b], (w * flux[0]).sum() / w.sum())
        good = inside & ~bad[1]
        w = ivar[1] * good
        torch.testing.assert_close(values[1, b], (w * flux[1]).sum() / w.sum())
        torch.testing.assert_close(weight[1, b], good.sum() / inside.sum())
    assert torch.equal(weight[0], torch.ones(4))


def test_spectrum_summary_does_not_depend_on_the_pixel_grid() -> None:
    fine, coarse = torch.linspace(3600.0, 9800.0, 6201), torch.linspace(3600.0, 9800.0, 1551)

    def continuum(wavelength: torch.Tensor) -> torch.Tensor:
        return (1 + torch.tanh((wavelength - 5000.0) / 100.0))[None]  # a 4000 Å break redshifted to z = 0.25

    fine_values, _ = spectrum_summary(_spectrum(fine, continuum(fine), torch.ones(1, 6201)), 16, RANGE)
    coarse_values, _ = spectrum_summary(_spectrum(coarse, continuum(coarse), torch.ones(1, 1551)), 16, RANGE)
    torch.testing.assert_close(fine_values, coarse_values, atol=0.02, rtol=0)
    shifted, _ = spectrum_summary(_spectrum(fine, continuum(fine / 1.1), torch.ones(1, 6201)), 16, RANGE)
    assert (shifted - fine_values).abs().max() > 0.5  # the break moved by a bin or more


def test_a_bin_the_spectrum_misses_has_no_weight() -> None:
    wavelength = torch.linspace(3600.0, 6000.0, 100)
    values, weight = spectrum_summary(_spectrum(wavelength, torch.ones(1, 100), torch.ones(1, 100)), 8, RANGE)
    assert weight[0, -1] == 0 and values[0, -1] == 0 and weight[0, 0] == 1


def test_loss_is_the_weighted_error_of_the_decoded_summaries_over_objects_with_both() -> None:
    model = tiny_model(("image", "spectrum"))
    samples = raw_samples(5, modalities=("image", "spectrum"))
    del samples[1]["spectrum"]  # no target: out of the image -> spectrum pair
    del samples[3]["image"]  # no source: out of it too, still in spectrum -> spectrum
    batch = model.preprocess(samples)
    objective = create_objective("predict", model, pairs=[["image", "spectrum"], ["spectrum", "spectrum"]], bins=6,
                                 hidden=32)
    out = objective(model, batch)
    embedded = model(batch)
    values, weight = spectrum_summary(batch["spectrum"], 6, (3600.0, 9824.0))  # rows: objects 0, 2, 3, 4

    def expected(source: str, source_rows: list[int], target_rows: list[int]) -> torch.Tensor:
        predicted = objective.decoders[f"{source}__spectrum"](embedded[source].z[source_rows])
        w = weight[target_rows]
        return ((predicted - values[target_rows]) ** 2 * w).sum() / w.sum()

    from_image = expected("image", [0, 2, 3], [0, 1, 3])  # objects 0, 2, 4; image rows: objects 0, 1, 2, 4
    from_spectrum = expected("spectrum", [0, 1, 2, 3], [0, 1, 2, 3])
    torch.testing.assert_close(out.metrics["loss/image->spectrum"], from_image)
    torch.testing.assert_close(out.loss, (from_image + from_spectrum) / 2)
    assert {"r2/image->spectrum", "r2/spectrum->spectrum"} <= set(out.metrics)


def test_decoders_and_encoders_learn_to_predict_the_target() -> None:
    model = tiny_model(("image", "spectrum"))
    model.train()
    batch = model.preprocess(raw_samples(8, modalities=("image", "spectrum"), lengths=[64] * 8))
    objective = create_objective("predict", model, pairs=[["image", "spectrum"]], bins=8, hidden=64)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(objective.parameters()), lr=3e-3)
    first = objective(model, batch)
    first.loss.backward()
    assert model.encoder("image").trunk.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.encoder("spectrum").trunk.blocks[0].attn.qkv.weight.grad is None  # only the target's data
    for _ in range(60):
        optimizer.zero_grad()
        objective(model, batch).loss.backward()
        optimizer.step()
    last = objective(model, batch)
    assert float(last.loss.detach()) < 0.3 * float(first.loss.detach())
    assert float(last.metrics["r2/image->spectrum"]) > 0.5


def test_a_sum_encodes_the_batch_once_for_contrastive_and_prediction() -> None:
    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(6, modalities=("image", "spectrum")))
    summed = create_objective("sum", model, objectives=[
        {"name": "contrastive"}, {"name": "predict", "weight": 0.5, "pairs": [["image", "spectrum"]], "bins": 4}])
    calls = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    out = summed(model, batch)
    assert len(calls) == 1
    contrastive = summed.parts["contrastive"](model, batch).loss
    prediction = summed.parts["predict"](model, batch).loss
    hook.remove()
    assert len(calls) == 3  # each part alone encodes it again
    torch.testing.assert_close(out.loss, contrastive + 0.5 * prediction)
    assert {"predict/loss/image->spectrum", "contrastive/loss"} <= set(out.metrics)


def test_a_batch_without_the_target_gives_a_zero_that_reaches_the_decoders() -> None:
    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(3, modalities=("image",)))
    objective = create_objective("predict", model, pairs=[["image", "spectrum"]])
    out = objective(model, batch)
    out.loss.backward()
    assert out.loss.item() == 0 and all(p.grad is not None for p in objective.parameters())


def test_bad_configurations_are_refused() -> None:
    model = tiny_model(("image", "spectrum", "lightcurve"))
    with pytest.raises(ConfigError, match="lightcurve"):
        create_objective("predict", model, pairs=[["image", "lightcurve"]])
    with pytest.raises(ConfigError, match="prediction pair"):
        create_objective("predict", model, pairs=[["image", "tabular"]])
    with pytest.raises(ConfigError, match="wavelength_range"):
        create_objective("predict", model, pairs=[["image", "spectrum"]], wavelength_range=[9000, 4000])
    with pytest.raises(ConfigError, match="loss"):
        create_objective("predict", model, pairs=[["image", "spectrum"]], loss="l1")


def test_image_targets_are_band_maps_of_the_encoder_input() -> None:
    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(2, modalities=("image", "spectrum")))
    objective = create_objective("predict", model, pairs=[["spectrum", "image"]], grid=2)
    values, weight = objective.summaries["image"](batch["image"])
    pixels = batch["image"].data["flux"] * batch["image"].data["mask"]
    torch.testing.assert_close(values, F.avg_pool2d(pixels, 4).flatten(1))
    assert values.shape == (2, 4 * 2 * 2) and bool((weight == 1).all()) and math.isfinite(float(values.sum()))
