"""Contrastive objective: reference values, per-object exclusion of missing modalities, SigLIP, temperature."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from astrofm.errors import ConfigError
from astrofm.objectives import ContrastiveObjective, create_objective
from tests.helpers.devices import DEVICES
from tests.modalities.factories import raw_samples, tiny_model


def _reference_clip(za: torch.Tensor, zb: torch.Tensor, scale: float) -> torch.Tensor:
    logits = scale * za @ zb.T
    target = torch.arange(len(za), device=za.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@pytest.mark.parametrize("device", DEVICES)
def test_clip_loss_equals_the_textbook_formula(device: str) -> None:
    model = tiny_model(("image", "spectrum")).to(device)
    batch = model.preprocess(raw_samples(6, modalities=("image", "spectrum"))).to(device)
    objective = create_objective("contrastive", model, temperature=0.1).to(device)
    out = objective(model, batch)
    z = model(batch)
    expected = _reference_clip(z["image"].z, z["spectrum"].z, 10.0)
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)
    assert out.metrics["pairs/image-spectrum"] == 6


def test_missing_modality_is_excluded_per_object_with_correct_gradients() -> None:
    model = tiny_model(("image", "spectrum", "lightcurve"))
    samples = raw_samples(8, modalities=("image", "spectrum", "lightcurve"))
    for i in (1, 4, 6):
        del samples[i]["spectrum"]
    del samples[2]["lightcurve"]
    objective = create_objective("contrastive", model)
    out = objective(model, model.preprocess(samples))
    assert torch.isfinite(out.loss)
    assert out.metrics["pairs/image-spectrum"] == 5 and out.metrics["pairs/spectrum-lightcurve"] == 4
    # the same loss, pair by pair, on the objects that have both modalities, with a textbook formula
    scale = objective.logit_scale(("image", "spectrum"))
    expected = []
    for a, b in objective.pairs:
        both = [s for s in samples if a in s and b in s]
        z = model(model.preprocess(both), [a, b])
        expected.append(_reference_clip(z[a].z, z[b].z, scale.item()))
    torch.testing.assert_close(out.loss, torch.stack(expected).mean(), atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out.loss, list(model.parameters()), allow_unused=True)
    reference = torch.autograd.grad(torch.stack(expected).mean(), list(model.parameters()), allow_unused=True)
    for g, r in zip(grads, reference):
        if r is not None:
            torch.testing.assert_close(g, r, atol=1e-6, rtol=1e-4)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


def test_an_object_without_a_real_token_is_no_pair() -> None:
    model = tiny_model(("image", "spectrum"))
    samples = raw_samples(4, modalities=("image", "spectrum"))
    samples[0]["spectrum"]["ivar"][:] = 0  # every pixel bad: its embedding would only reflect the padding
    batch = model.preprocess(samples)
    out = create_objective("contrastive", model, temperature=0.1)(model, batch)
    assert out.metrics["pairs/image-spectrum"] == 3
    z = model(batch)
    torch.testing.assert_close(out.loss, _reference_clip(z["image"].z[1:], z["spectrum"].z[1:], 10.0))


def test_views_of_sequences_shorter_than_a_block_are_no_pairs() -> None:
    model = tiny_model(("lightcurve", "spectrum"))
    batch = model.preprocess(raw_samples(8, modalities=("lightcurve", "spectrum"), lengths=[30] * 8))
    torch.manual_seed(0)  # blocks of 64 points: each half is either the whole curve or nothing
    out = create_objective("contrastive", model, views={"lightcurve": {"complement": True}})(model, batch)
    assert out.metrics["pairs/lightcurve~view-lightcurve~rest"] == 0
    assert out.metrics["pairs/lightcurve-spectrum"] == 8 and torch.isfinite(out.loss)


def test_a_modality_absent_from_the_whole_batch() -> None:
    model = tiny_model(("image", "spectrum", "lightcurve"))
    samples = raw_samples(5, modalities=("image", "spectrum"))
    out = create_objective("contrastive", model)(model, model.preprocess(samples))
    assert torch.isfinite(out.loss) and out.metrics["pairs/image-lightcurve"] == 0
    pair_only = create_objective("contrastive", model, pairs=[["image", "spectrum"]])(model, model.preprocess(samples))
    torch.testing.assert_close(out.loss, pair_only.loss)  # pairs without objects do not dilute the loss


def test_siglip_equals_the_sigmoid_formula() -> None:
    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(5, modalities=("image", "spectrum")))
    objective = create_objective("contrastive", model, loss="siglip", temperature=0.1, siglip_bias=-2.0)
    out = objective(model, batch)
    z = model(batch)
    logits = 10.0 * z["image"].z @ z["spectrum"].z.T - 2.0
    labels = 2 * torch.eye(5) - 1
    expected = -F.logsigmoid(labels * logits).sum() / 5
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)
    out.loss.backward()
    assert objective.bias["image__spectrum"].grad is not None


def test_temperature_is_learned_and_clamped() -> None:
    model = tiny_model(("image", "spectrum"))
    objective = create_objective("contrastive", model, temperature=0.07, max_logit_scale=50.0)
    batch = model.preprocess(raw_samples(4, modalities=("image", "spectrum")))
    objective(model, batch).loss.backward()
    assert objective.log_scale["image__spectrum"].grad is not None  # the loss uses the temperature
    with torch.no_grad():
        objective.log_scale["image__spectrum"].fill_(10.0)
    assert math.isclose(objective.logit_scale(("image", "spectrum")).item(), 50.0, rel_tol=1e-5)
    fixed = ContrastiveObjective(["image", "spectrum"], learn_temperature=False, per_pair_temperature=False)
    assert not any(p.requires_grad for p in fixed.parameters())
    with pytest.raises(ConfigError):
        ContrastiveObjective(["image"])


@pytest.mark.parametrize("device", DEVICES)
def test_masked_views_add_a_self_supervised_pair(device: str) -> None:
    from astrofm.objectives.contrastive import masked_views

    model = tiny_model(("image", "spectrum")).to(device)
    batch = model.preprocess(raw_samples(6, modalities=("image", "spectrum"), lengths=[64] * 6)).to(device)
    torch.manual_seed(0)
    view, rest = masked_views(batch["spectrum"], 0.5, 8, hide=["log_norm"])
    hidden = batch["spectrum"].mask & ~view.mask
    assert torch.equal(rest.mask, hidden) and not bool((view.mask & rest.mask).any())
    assert not bool(view.data["log_norm"].any()) and bool(batch["spectrum"].data["log_norm"].any())
    assert 0.25 < hidden.float().mean() < 0.75
    blocks = hidden.reshape(6, 8, 8)
    assert bool(((blocks.all(dim=-1)) | (~blocks).all(dim=-1)).all())  # whole blocks are masked
    objective = create_objective("contrastive", model, views={"spectrum": {"fraction": 0.5, "block": 8}}).to(device)
    assert objective.pairs == [("image", "spectrum"), ("spectrum", "spectrum~view")]
    out = objective(model, batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.metrics["pairs/spectrum-spectrum~view"] == 6
    assert objective.log_scale["spectrum__spectrum~view"].grad is not None
    degraded_halves = {"spectrum": {"complement": True, "block": 8, "degrade": 2.0}}
    halves = create_objective("contrastive", model, views=degraded_halves).to(device)
    assert halves.pairs[-1] == ("spectrum~view", "spectrum~rest")
    assert torch.isfinite(halves(model, batch).loss)
    with pytest.raises(ConfigError, match="invalid view"):
        create_objective("contrastive", model, views={"spectrum": {"fraction": 1.5}})


def test_degraded_views_get_their_own_noise_with_consistent_errors() -> None:
    from astrofm.objectives.contrastive import degrade_noise, masked_views

    torch.manual_seed(0)
    flux, ivar = torch.zeros(2000, 500), torch.full((2000, 500), 4.0)  # σ = 0.5
    ivar[:, :10] = 0  # bad pixels stay as they are
    degraded = degrade_noise({"flux": flux, "ivar": ivar}, 4.0)
    factor = (ivar[:, 10:11] / degraded["ivar"][:, 10:11]).sqrt()  # per object, in [1, 4]
    assert float(factor.min()) >= 1 and float(factor.max()) <= 4 and float(factor.std()) > 0.5
    assert torch.equal(degraded["flux"][:, :10], flux[:, :10]) and not bool(degraded["ivar"][:, :10].any())
    expected = 0.25 * (factor**2 - 1)  # the added variance, σ²(f² - 1)
    measured = degraded["flux"][:, 10:].var(dim=1, keepdim=True)
    assert float(((measured - expected) / (expected + 0.05)).abs().median()) < 0.1
    errors = degrade_noise({"flux": flux, "flux_err": torch.full((2000, 500), 0.5)}, 2.0)["flux_err"]
    assert float(errors.min()) >= 0.5 and float(errors.max()) <= 1.0
    with pytest.raises(ConfigError, match="ivar"):
        degrade_noise({"flux": flux}, 2.0)

    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(6, modalities=("image", "spectrum"), lengths=[64] * 6))
    view, rest = masked_views(batch["spectrum"], 0.5, 8, degrade=3.0)
    assert not torch.equal(view.data["ivar"], rest.data["ivar"])  # each half its own S/N
    same, _ = masked_views(batch["spectrum"], 0.5, 8)
    assert same.data["flux"] is batch["spectrum"].data["flux"]  # degrade 1: untouched
    with pytest.raises(ConfigError, match="degrade"):
        create_objective("contrastive", model, views={"spectrum": {"degrade": 0.5}})


def test_tilted_views_get_their_own_power_law_and_keep_their_snr() -> None:
    from astrofm.objectives.contrastive import masked_views, tilt_spectrum

    torch.manual_seed(0)
    wavelength = torch.linspace(3600.0, 9800.0, 300).expand(4000, 300).clone()
    wavelength[:, 250:] = 0  # padding
    flux, ivar = torch.ones(4000, 300), torch.full((4000, 300), 4.0)
    tilted = tilt_spectrum({"flux": flux, "ivar": ivar, "lambda": wavelength}, 0.5)
    ratio = (tilted["flux"][:, 249] / tilted["flux"][:, 0]).log()  # ln(red end / blue end) = s ~ N(0, 0.5)
    assert abs(float(ratio.std()) - 0.5) < 0.03 and abs(float(ratio.mean())) < 0.03
    slope = (tilted["flux"][:, 1:250].log() - tilted["flux"][:, :249].log()) / wavelength[:, :250].log().diff()
    assert float((slope - slope[:, :1]).abs().max()) < 1e-3  # a power law: ln flux linear in ln λ
    snr = tilted["flux"] * tilted["ivar"].sqrt()
    assert torch.allclose(snr[:, :250], torch.full((4000, 250), 2.0), rtol=1e-4)  # S/N per pixel kept
    assert torch.equal(tilted["flux"][:, 250:], flux[:, 250:])  # padding untouched
    with pytest.raises(ConfigError, match="lambda"):
        tilt_spectrum({"flux": flux, "ivar": ivar}, 0.5)

    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(6, modalities=("image", "spectrum"), lengths=[64] * 6))
    view, rest = masked_views(batch["spectrum"], 0.5, 8, tilt=1.0)
    original = batch["spectrum"].data["flux"]
    nonzero = original.abs() > 1e-3
    assert nonzero.sum() > 100
    first, second = (view.data["flux"][nonzero] / original[nonzero], rest.data["flux"][nonzero] / original[nonzero])
    assert float((first - second).abs().median()) > 1e-2  # each half its own tilt
    with pytest.raises(ConfigError, match="tilt"):
        create_objective("contrastive", model, views={"spectrum": {"tilt": -1.0}})


def test_image_views_mask_square_patches_and_turn_each_object_on_its_own() -> None:
    from astrofm.objectives.contrastive import masked_views, random_dihedral

    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(8, modalities=("image", "spectrum")))
    images = batch["image"]
    side = images.data["flux"].shape[-1]
    torch.manual_seed(0)
    view, rest = masked_views(images, 0.5, 4)
    good = images.data["mask"].bool()
    assert torch.equal(view.data["mask"] | rest.data["mask"], good)
    assert not bool((view.data["mask"] & rest.data["mask"]).any())
    squares = (8, 4, side // 4, 4, side // 4, 4)
    cut, usable = (good & ~view.data["mask"]).reshape(squares), good.reshape(squares)
    whole = (cut == usable).all(dim=(3, 5)) | ~cut.any(dim=(3, 5))
    assert side % 4 == 0 and bool(whole.all())  # whole 4 x 4 squares are masked
    assert 0.2 < float(cut.sum() / usable.sum()) < 0.8
    assert torch.equal(view.data["flux"], images.data["flux"])  # no turn asked

    torch.manual_seed(1)
    marked = {"flux": torch.zeros(64, 1, 5, 5), "mask": torch.zeros(64, 1, 5, 5, dtype=torch.bool)}
    marked["flux"][:, 0, 0, 1] = 1.0  # a pixel off the diagonals tells all 8 orientations apart
    marked["mask"][:, 0, 0, 1] = True
    turned = random_dihedral(marked)
    assert torch.equal(turned["flux"].bool(), turned["mask"])  # every field of an object turned alike
    positions = {tuple(torch.nonzero(img[0]).tolist()[0]) for img in turned["flux"]}
    assert len(positions) == 8  # 64 objects took all 8 flips and turns

    objective = create_objective("contrastive", model, views={"image": {"fraction": 0.25, "block": 4,
                                                                         "dihedral": True}})
    assert objective.pairs[-1] == ("image", "image~view")
    out = objective(model, batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.metrics["pairs/image-image~view"] == 8
    assert model.encoders["image"].patch.weight.grad is not None
    with pytest.raises(ConfigError, match="degrade and tilt"):
        masked_views(images, 0.5, 4, degrade=2.0)
    with pytest.raises(ConfigError, match="dihedral views need images"):
        masked_views(batch["spectrum"], 0.5, 8, dihedral=True)
