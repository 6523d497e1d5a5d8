"""Autoregressive, masked and summed objectives: reference values, what counts in the loss, training signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from astrofm.data.batch import Batch, ModalityBatch
from astrofm.errors import ConfigError
from astrofm.modalities import SpectrumEncoder
from astrofm.modalities.spectrum import spectrum_pixels
from astrofm.objectives import create_objective
from astrofm.objectives.masked import MASKERS, choose_hidden
from tests.ar.factories import tiny_ar_model
from tests.modalities.factories import raw_samples, tiny_model


def test_autoregressive_loss_is_the_mean_huber_over_predicted_values() -> None:
    model = tiny_ar_model(("image", "spectrum"))
    samples = raw_samples(3, modalities=("image", "spectrum"), lengths=[24, 64, 40])
    del samples[0]["image"]
    batch = model.preprocess(samples)
    objective = create_objective("autoregressive", model, delta=0.5, weights={"spectrum": 3.0})
    out = objective(model, batch)
    predictions = model(batch)
    expected = {}
    for name, p in predictions.items():
        weight = p.valid[..., None].float() * (p.weight if p.weight is not None else 1.0)
        terms = F.huber_loss(p.predicted, p.target, reduction="none", delta=0.5)
        expected[name] = (terms * weight).sum() / weight.expand_as(terms).sum()
    torch.testing.assert_close(out.metrics["loss/image"], expected["image"])
    torch.testing.assert_close(out.loss, (expected["image"] + 3 * expected["spectrum"]) / 4)
    mse = create_objective("autoregressive", model, loss="mse")(model, batch)
    assert not torch.isclose(mse.loss, out.loss)
    with pytest.raises(ConfigError, match="AR model"):
        create_objective("autoregressive", tiny_model(("image",)))


def test_padding_values_do_not_reach_the_loss() -> None:
    model = tiny_ar_model(("spectrum",))
    batch = model.preprocess(raw_samples(2, modalities=("spectrum",), lengths=[24, 64]))
    objective = create_objective("autoregressive", model)
    spectrum = batch["spectrum"]
    noisy = {**spectrum.data, "flux": torch.where(spectrum.mask, spectrum.data["flux"], 1e3)}
    other = Batch(batch.object_id, {"spectrum": ModalityBatch(noisy, spectrum.presence, spectrum.mask)})
    torch.testing.assert_close(objective(model, other).loss, objective(model, batch).loss, atol=0, rtol=0)


def test_choose_hidden_hides_the_ratio_of_real_tokens_only() -> None:
    real = torch.ones(3, 10, dtype=torch.bool)
    real[1, 4:] = False
    real[2, 1:] = False
    hidden = choose_hidden(real, 0.5)
    assert hidden.sum(dim=1).tolist() == [5, 2, 0] and not (hidden & ~real).any()


def test_hidden_spectrum_windows_flag_their_pixels_bad_with_overlap() -> None:
    model = tiny_model(("spectrum",), window=8, stride=4)
    batch = model.preprocess(raw_samples(2, modalities=("spectrum",), lengths=[40, 40]))
    encoder = model.encoder("spectrum")
    assert isinstance(encoder, SpectrumEncoder)
    targets, hide = MASKERS[SpectrumEncoder][1](encoder, batch["spectrum"])
    hidden = torch.zeros_like(targets.real)
    hidden[0, 2] = True  # pixels 8..15
    bad = hide(hidden).data["mask"]
    before = batch["spectrum"].data["mask"].bool()
    assert bad[0, 8:16].all() and torch.equal(bad[0, :8], before[0, :8]) and torch.equal(bad[0, 16:], before[0, 16:])
    assert torch.equal(bad[1], before[1])


def test_masked_objective_trains_encoders_and_heads_on_all_modalities() -> None:
    model = tiny_model(("image", "spectrum", "lightcurve", "tabular"))
    model.train()
    batch = model.preprocess(raw_samples(6))
    objective = create_objective("masked", model, mask_ratio={"image": 0.5, "spectrum": 0.5, "lightcurve": 0.3,
                                                              "tabular": 0.4})
    out = objective(model, batch)
    out.loss.backward()
    assert set(out.metrics) == {f"loss/{m}" for m in ("image", "spectrum", "lightcurve", "tabular")}
    for name in model.modalities:
        assert model.encoder(name).trunk.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
        assert objective.heads[name].weight.grad.abs().sum() > 0
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(objective.parameters()), lr=3e-3)
    torch.manual_seed(0)
    first = objective(model, batch).loss.item()
    for _ in range(40):
        optimizer.zero_grad()
        objective(model, batch).loss.backward()
        optimizer.step()
    torch.manual_seed(0)
    assert objective(model, batch).loss.item() < 0.7 * first


def test_noise_weighted_masked_loss_is_the_chi2_of_the_hidden_pixels() -> None:
    model = tiny_model(("spectrum", "lightcurve"))
    samples = raw_samples(4, modalities=("spectrum", "lightcurve"), lengths=[40] * 4)
    for sample, scale in zip(samples, (1e-4, 1.0, 10.0, 100.0)):  # spectra of very different S/N
        sample["spectrum"] = {**sample["spectrum"], "ivar": sample["spectrum"]["ivar"] * scale}
        sample["lightcurve"] = {**sample["lightcurve"], "flux_err": sample["lightcurve"]["flux_err"] / np.sqrt(scale)}
    batch = model.preprocess(samples)
    objective = create_objective("masked", model, mask_ratio=0.5, noise_weighted=True)
    torch.manual_seed(0)
    metrics = objective(model, batch).metrics
    torch.manual_seed(0)
    for name, noise_weight in (("spectrum", lambda d: d["ivar"]), ("lightcurve", lambda d: d["flux_err"] ** -2)):
        mb, encoder = batch[name], model.encoder(name)
        targets, hide = MASKERS[type(encoder)][1](encoder, mb)
        hidden = choose_hidden(targets.real, 0.5)
        predicted = objective.heads[name](encoder(hide(hidden)).tokens[:, -hidden.shape[1]:])
        pixel_weight = noise_weight(mb.data).float() * (targets.weight[..., 0] if name == "lightcurve" else 1)
        if name == "spectrum":
            good = encoder.windows(spectrum_pixels(mb)[3].float())
            pixel_weight = encoder.windows(pixel_weight) * good
        weight = hidden[..., None] * pixel_weight.reshape(predicted.shape)
        chi2 = (weight * (predicted - targets.values) ** 2).sum() / weight.sum()
        torch.testing.assert_close(metrics[f"loss/{name}"], chi2)
    plain = create_objective("masked", model, mask_ratio=0.5)
    torch.manual_seed(0)
    assert not torch.isclose(plain(model, batch).metrics["loss/spectrum"], metrics["loss/spectrum"], rtol=0.1)
    with pytest.raises(ConfigError, match="ViTImageEncoder of modality 'image'"):
        create_objective("masked", tiny_model(("image", "spectrum")), noise_weighted=True)


def test_sum_objective_weights_contrastive_and_masked_losses() -> None:
    model = tiny_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(5, modalities=("image", "spectrum")))
    summed = create_objective("sum", model, objectives=[{"name": "contrastive", "weight": 1.0},
                                                        {"name": "masked", "weight": 0.25, "modalities": ["spectrum"]}])
    torch.manual_seed(1)
    out = summed(model, batch)
    torch.manual_seed(1)
    contrastive = summed.parts["contrastive"](model, batch).loss
    masked = summed.parts["masked"](model, batch).loss
    torch.testing.assert_close(out.loss, contrastive + 0.25 * masked)
    assert {"contrastive/loss", "masked/loss", "masked/loss/spectrum"} <= set(out.metrics)
    assert {n for n, _ in summed.named_parameters()} >= {"parts.masked.heads.spectrum.weight"}


def test_contrastive_plus_masked_trains_through_the_pretrain_module() -> None:
    import lightning as L
    from torch.utils.data import DataLoader

    from astrofm.training import PretrainModule
    from tests.modalities.factories import tiny_config

    L.seed_everything(0)
    objective = {"name": "sum", "objectives": [{"name": "contrastive"},
                                               {"name": "masked", "weight": 0.5, "mask_ratio": 0.4}]}
    module = PretrainModule(tiny_config(("image", "spectrum")), objective=objective, optimizer={"warmup_steps": 1})
    batches = [module.model.preprocess(raw_samples(8, seed=s, modalities=("image", "spectrum"))) for s in range(3)]
    head = module.objective.parts["masked"].heads["spectrum"].weight.detach().clone()
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    assert (module.objective.parts["masked"].heads["spectrum"].weight - head).abs().max() > 0
    assert set(module.objective.parts["masked"].heads) == {"image", "spectrum"}


def test_a_pair_missing_from_a_validation_batch_is_weightless_in_the_epoch_mean() -> None:
    """Every batch reports every metric name (DDP ranks reduce the same ones); a placeholder has no weight."""
    import lightning as L

    from astrofm.training import PretrainModule
    from tests.modalities.factories import tiny_config

    module = PretrainModule(tiny_config(("image", "spectrum")),
                            objective={"name": "predict", "pairs": [["image", "spectrum"]], "bins": 6, "hidden": 32})
    model = module.model.eval()
    images_only = model.preprocess(raw_samples(4, modalities=("image",)))
    both = model.preprocess(raw_samples(4, seed=1, modalities=("image", "spectrum")))
    placeholder = module.objective(model, images_only)
    assert placeholder.absent == {"loss/image->spectrum", "r2/image->spectrum"}
    assert float(placeholder.metrics["loss/image->spectrum"]) == 0.0
    with torch.no_grad():
        expected = module.objective(model, both).metrics["loss/image->spectrum"]
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    batches = torch.utils.data.DataLoader([images_only, both, images_only], batch_size=None)  # one loader
    logged = trainer.validate(module, dataloaders=batches, verbose=False)[0]
    assert logged["val/loss/image->spectrum"] == pytest.approx(float(expected), rel=1e-5)
