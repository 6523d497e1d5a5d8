"""Wavelength-shift equivariance: shifted views, their noise and masks, the loss, and that it learns redshift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.objectives import create_objective
from astrofm.objectives.shift import first_rows, shifted_views
from tests.modalities.factories import raw_samples, tiny_model

GRID = torch.arange(3600.0, 9824.0, 2.0)


def _spectra(flux: torch.Tensor, ivar: torch.Tensor, wavelength: torch.Tensor = GRID,
             real: torch.Tensor | None = None) -> ModalityBatch:
    data = {"flux": flux, "ivar": ivar, "lambda": wavelength.expand_as(flux).clone()}
    mask = real if real is not None else torch.ones_like(flux, dtype=torch.bool)
    return ModalityBatch(data, torch.ones(len(flux), dtype=torch.bool), mask)


def test_a_shift_moves_a_line_by_its_factor_and_both_views_keep_the_same_pixels() -> None:
    flux = 1 + 10 * torch.exp(-0.5 * ((GRID - 5000.0) / 5.0) ** 2)[None].repeat(3, 1)
    shift = torch.tensor([0.05, -0.05, 0.0])
    observed, shifted = shifted_views(_spectra(flux, torch.full_like(flux, 1e8)), shift)
    for row in range(3):
        peak = GRID[shifted.data["flux"][row].argmax()]
        assert abs(float(peak) - 5000.0 * math.exp(float(shift[row]))) <= 2.0  # within a pixel
        assert GRID[observed.data["flux"][row].argmax()] == 5000.0
    good = shifted.data["ivar"] > 0
    assert torch.equal(good, observed.data["ivar"] > 0)
    assert float(GRID[good[0]].min()) >= 3600.0 * math.exp(0.05)  # the blue end no view covers is cut
    assert float(GRID[good[1]].max()) <= 9822.0 * math.exp(-0.05)  # and the red end for a blueshift
    assert bool(good[2].all())
    assert torch.equal(observed.data["flux"][2], flux[2]) and torch.allclose(shifted.data["flux"][2], flux[2])


def test_both_views_get_the_same_ivar_and_noise_that_matches_it() -> None:
    torch.manual_seed(0)
    ivar = torch.full((400, len(GRID)), 4.0)
    sky = (GRID - 7000.0).abs() < 10.0  # a sky line: noise 10x higher at fixed observed wavelengths
    ivar[:, sky] = 0.04
    flux = torch.randn(400, len(GRID)) * ivar.rsqrt()
    observed, shifted = shifted_views(_spectra(flux, ivar), torch.full((400,), 0.0371))
    assert torch.equal(observed.data["ivar"], shifted.data["ivar"])  # the noise cannot tell the views apart
    moved = (GRID - 7000.0 * math.exp(0.0371)).abs() < 8.0
    common = observed.data["ivar"]
    assert bool((common[:, sky] < 0.1).all()) and bool((common[:, moved] < 0.1).all())  # the line, both places
    elsewhere = (common > 0) & ~sky & ~moved & ((GRID - 7000.0 * math.exp(0.0371)).abs() > 30.0)
    for view in (observed, shifted):
        normalized = view.data["flux"][elsewhere] * view.data["ivar"][elsewhere].sqrt()
        assert abs(float(normalized.std()) - 1.0) < 0.01  # interpolated pixels without fresh noise: about 0.82
        for line in (sky, moved):
            inside = line & (common[0] > 0)
            assert abs(float((view.data["flux"][:, inside] * common[:, inside].sqrt()).std()) - 1.0) < 0.05


def test_bad_pixels_and_padding_are_left_out_of_both_views() -> None:
    flux, ivar = torch.ones(2, len(GRID)), torch.ones(2, len(GRID))
    ivar[0, 1000] = 0  # a bad pixel
    real = torch.ones(2, len(GRID), dtype=torch.bool)
    real[1, 3000:] = False  # a shorter spectrum: padding
    wavelength = GRID.expand(2, -1).clone()
    wavelength[1, 3000:] = 0
    batch = ModalityBatch({"flux": flux, "ivar": ivar, "lambda": wavelength}, torch.ones(2, dtype=torch.bool), real)
    observed, shifted = shifted_views(batch, torch.tensor([0.01, 0.01]))
    source = GRID[1000] * math.exp(0.01)  # where the bad pixel lands in the shifted view
    moved = (GRID - source).abs() < 2.0
    for view in (observed, shifted):
        assert float(view.data["ivar"][0, 1000]) == 0 and bool((view.data["ivar"][0, moved] == 0).all())
        assert bool((view.data["ivar"][1, 3000:] == 0).all()) and bool((view.data["flux"][1, 3000:] == 0).all())
    assert int((shifted.data["ivar"][1] > 0).sum()) > 2800
    with pytest.raises(ConfigError, match="lambda"):
        shifted_views(ModalityBatch({"flux": flux, "ivar": ivar}, torch.ones(2, dtype=torch.bool), real),
                      torch.zeros(2))


def test_first_rows_keeps_the_first_present_objects() -> None:
    model = tiny_model(("image", "spectrum"))
    samples = raw_samples(6, modalities=("image", "spectrum"), lengths=[32] * 6)
    for i in (0, 3):
        del samples[i]["spectrum"]
    spectra = model.preprocess(samples)["spectrum"]
    kept = first_rows(spectra, 2)
    assert kept.presence.tolist() == [False, True, True, False, False, False]
    assert len(kept.data["flux"]) == 2 and torch.equal(kept.data["flux"], spectra.data["flux"][:2])
    assert first_rows(spectra, 10) is spectra


def _line_spectra(z: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """Raw samples: one emission line at 5000 Å · (1 + z) on a flat continuum, S/N 20 per pixel."""
    wave = np.linspace(3600, 9824, 256).astype(np.float32)
    samples = []
    for i, redshift in enumerate(z):
        flux = 1 + 3 * np.exp(-0.5 * ((wave - 5000 * (1 + redshift)) / 60) ** 2) + rng.normal(0, 0.05, 256)
        samples.append({"object_id": str(i), "spectrum": {"flux": flux.astype(np.float32), "lambda": wave,
                                                          "ivar": np.full(256, 400, np.float32)}})
    return samples


def test_the_learned_direction_measures_redshift_without_labels() -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = tiny_model(("spectrum",), dim=32)
    model.train()
    objective = create_objective("wavelength_shift", model, max_log_shift=0.1, scale=4.0)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(objective.parameters()), lr=2e-3)
    z = rng.uniform(0.0, 0.5, 48)
    batch = model.preprocess(_line_spectra(z, rng))
    first = float(objective(model, batch).loss.detach())
    for _ in range(500):  # converges for each of seeds 0-5 at this rate (3e-3 stalls on some)
        optimizer.zero_grad()
        objective(model, batch).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        last = objective(model, batch)
        test_z = rng.uniform(0.0, 0.5, 64)
        embedded = model(model.preprocess(_line_spectra(test_z, rng)))["spectrum"].z
        position = (embedded @ (objective.direction / objective.direction.norm())).numpy()
    assert float(last.loss) < 0.3 * first and float(last.metrics["r2"]) > 0.7
    assert abs(np.corrcoef(position, np.log1p(test_z))[0, 1]) > 0.9  # u · e tracks ln(1 + z) on new spectra


def test_a_batch_without_spectra_gives_a_zero_that_reaches_every_part() -> None:
    model = tiny_model(("image", "spectrum"))
    objective = create_objective("wavelength_shift", model)
    out = objective(model, model.preprocess(raw_samples(3, modalities=("image",))))
    out.loss.backward()
    assert out.loss.item() == 0 and "r2" in out.absent
    assert objective.direction.grad is not None
    assert model.encoder("spectrum").embed.weight.grad is not None


def test_bad_configurations_are_refused() -> None:
    model = tiny_model(("image", "spectrum"))
    with pytest.raises(ConfigError, match="no modality 'lightcurve'"):
        create_objective("wavelength_shift", model, modality="lightcurve")
    for options in ({"max_log_shift": 0.0}, {"scale": -1.0}, {"rows": 0}):
        with pytest.raises(ConfigError, match="wavelength_shift needs"):
            create_objective("wavelength_shift", model, **options)
