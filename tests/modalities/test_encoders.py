"""Encoders: registry, masks respected inside attention, batch invariance, any grid or length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch, collate
from astrofm.errors import ConfigError
from astrofm.modalities import (
    ENCODERS,
    EncoderConfig,
    EncoderOutput,
    ModalityEncoder,
    create_encoder,
    list_encoders,
    register_encoder,
)
from astrofm.modalities.spectrum import SpectrumEncoder
from tests.helpers.devices import CUDA, DEVICES
from tests.helpers.synthetic import image_item
from tests.modalities.factories import raw_samples, tiny_model

SEQUENCE_MODALITIES = ("spectrum", "lightcurve", "tabular")


def _embed(model, samples) -> dict[str, Tensor]:
    return model.embed(samples)


def test_registry_has_every_encoder_and_checks_options() -> None:
    assert {"image_vit", "image_timm", "spectrum", "lightcurve", "tabular", "tabular_mlp"} <= set(list_encoders())
    assert list_encoders("image") == ["image_timm", "image_vit"]
    encoder = create_encoder("spectrum", dim=32, depth=1, heads=2, window=10)
    assert isinstance(encoder, SpectrumEncoder) and encoder.out_dim == 32
    with pytest.raises(ConfigError, match="unknown encoder"):
        create_encoder("radio_cube")
    with pytest.raises(ConfigError, match="unknown option"):
        create_encoder("spectrum", windw=10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("modality", SEQUENCE_MODALITIES)
def test_padding_amount_and_values_do_not_change_embeddings(modality: str, device: str) -> None:
    model = tiny_model((modality,)).to(device)
    samples = raw_samples(3, modalities=(modality,), lengths=[20, 45, 60])
    batch = model.preprocess(samples)
    reference = model.embed(batch)[modality]
    mb = batch[modality]
    assert mb.mask is not None and not bool(mb.mask.all())  # there is padding (or missing features)
    # garbage in every padded / unobserved position
    noisy = ModalityBatch({k: torch.where(_broadcast(~mb.mask, v), _garbage(v), v)
                           if v.shape[:2] == mb.mask.shape else v for k, v in mb.data.items()},
                          mb.presence, mb.mask, mb.meta)
    batch.modalities[modality] = noisy
    torch.testing.assert_close(model.embed(batch)[modality], reference, atol=1e-5, rtol=1e-5)
    # each object alone (least padding) embeds as in the padded batch
    for i in range(3):
        alone = model.embed(samples[i:i + 1])[modality]
        torch.testing.assert_close(alone[0], reference[i], atol=1e-5, rtol=1e-5)


def _broadcast(mask: Tensor, value: Tensor) -> Tensor:
    return mask.reshape(*mask.shape, *([1] * (value.ndim - mask.ndim)))


def _garbage(value: Tensor) -> Tensor:
    if value.dtype == torch.bool:
        return ~value
    if value.dtype in (torch.int64, torch.int32):
        return torch.ones_like(value)
    return torch.full_like(value, 123.0)


def test_bad_spectrum_pixels_are_excluded() -> None:
    model = tiny_model(("spectrum",))
    samples = raw_samples(2, modalities=("spectrum",), lengths=[64, 64])
    reference = model.embed(samples)["spectrum"]
    for s in samples:
        bad = s["spectrum"]["mask"]
        assert bad.any()
        s["spectrum"]["flux"] = np.where(bad, 1e4, s["spectrum"]["flux"]).astype(np.float32)
    torch.testing.assert_close(model.embed(samples)["spectrum"], reference, atol=1e-5, rtol=1e-5)


def test_relative_noise_hides_the_overall_s_n_but_keeps_the_noise_shape() -> None:
    samples = raw_samples(3, modalities=("spectrum",), lengths=[64, 64, 64])

    def with_ivar(factor: np.ndarray | float) -> list[dict]:
        return [{**s, "spectrum": {**s["spectrum"], "ivar": (s["spectrum"]["ivar"] * factor).astype(np.float32)}}
                for s in samples]

    brighter = with_ivar(100.0)  # ten times the S/N everywhere, the same flux
    relative, absolute = tiny_model(("spectrum",), relative_noise=True), tiny_model(("spectrum",))
    reference = relative.embed(samples)["spectrum"]
    torch.testing.assert_close(relative.embed(brighter)["spectrum"], reference, atol=1e-5, rtol=1e-5)
    assert (absolute.embed(brighter)["spectrum"] - absolute.embed(samples)["spectrum"]).abs().max() > 1e-3
    sky_line = np.ones(64, np.float32)
    sky_line[10:14] = 0.01  # a noisier stretch: the shape of the noise still counts
    assert (relative.embed(with_ivar(sky_line))["spectrum"] - reference).abs().max() > 1e-3


def test_missing_tabular_values_are_masked() -> None:
    model = tiny_model(("tabular",))
    samples = raw_samples(4, modalities=("tabular",))
    samples[0]["tabular"]["values"][[1, 3]] = np.nan
    reference = model.embed(samples)["tabular"]
    mb = model.preprocess(samples)["tabular"]
    assert not bool(mb.mask[0, 1]) and not bool(mb.mask[0, 3])
    mb.data["values"][0, 1] = 50.0  # a missing feature's placeholder changes: no effect
    batch = model.preprocess(samples)
    batch.modalities["tabular"] = mb
    torch.testing.assert_close(model.embed(batch)["tabular"], reference, atol=1e-5, rtol=1e-5)
    mlp = create_encoder("tabular_mlp", n_features=5, hidden=[8])
    assert mlp(mb).pooled.shape == (4, 8)


@pytest.mark.parametrize("device", DEVICES)
def test_same_embedding_alone_and_in_a_batch_of_64_and_deterministic_in_eval(device: str) -> None:
    model = tiny_model().to(device)
    samples = raw_samples(64, seed=3)
    full = model.embed(samples)
    alone = model.embed(samples[17:18])
    for m, z in full.items():
        assert z.shape == (64, 8)
        torch.testing.assert_close(alone[m][0], z[17], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.embed(samples)[m], z, atol=0, rtol=0)


def test_overlapping_windows_of_a_short_spectrum_do_not_depend_on_a_longer_neighbour() -> None:
    samples = raw_samples(2, modalities=("spectrum",), lengths=[20, 24])  # windows of 8 every 4: 4 vs 5 windows
    model = tiny_model(("spectrum",), stride=4)
    _, mask = model.encoder("spectrum").tokenize(model.preprocess(samples)["spectrum"])
    assert mask.sum(dim=1).tolist() == [4, 5]  # the 5th window holds pixels 16-19 of object 0, yet is not its own
    torch.testing.assert_close(model.embed(samples)["spectrum"][0], model.embed(samples[:1])["spectrum"][0],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", ["astrofm", "ar"])
def test_a_spectrum_without_a_good_pixel_has_no_embedding(make: str) -> None:
    from tests.ar.factories import tiny_ar_model

    samples = raw_samples(3, modalities=("image", "spectrum"), lengths=[20, 40, 30])
    samples[0]["spectrum"]["ivar"][:] = 0  # every pixel bad: no real token
    model = tiny_model(("image", "spectrum")) if make == "astrofm" else tiny_ar_model(("image", "spectrum"))
    z = model.embed(samples)["spectrum"]
    assert bool(torch.isnan(z[0]).all()) and bool(torch.isfinite(z[1:]).all())
    assert bool(torch.isnan(model.embed(samples[:1])["spectrum"]).all())  # alone or in a batch
    assert bool(torch.isfinite(model.embed(samples)["image"]).all())


def test_spectrum_windows_equal_a_loop_and_any_grid_works() -> None:
    encoder = create_encoder("spectrum", dim=16, depth=1, heads=2, window=8, stride=4)
    x = torch.arange(30.0)[None]
    windows = encoder.windows(x)
    padded = torch.nn.functional.pad(x, (0, 2))
    loop = torch.stack([padded[:, s:s + 8] for s in range(0, 32 - 8 + 1, 4)], dim=1)
    torch.testing.assert_close(windows, loop)
    model = tiny_model(("spectrum",))
    rng = np.random.default_rng(0)
    desi = np.arange(3600, 9824.01, 0.8, dtype=np.float32)
    lamost = (3850 * 10 ** (1e-4 * np.arange(3500))).astype(np.float32)
    samples = [{"object_id": str(i), "spectrum": {"flux": rng.normal(1, 0.1, len(w)).astype(np.float32),
                                                  "ivar": np.ones(len(w), np.float32), "lambda": w,
                                                  "mask": np.zeros(len(w), bool)}}
               for i, w in enumerate([desi, lamost])]
    z = model.embed(samples)["spectrum"]
    assert torch.isfinite(z).all() and z.shape == (2, 8)


@pytest.mark.parametrize("points", [10, 1000])
def test_lightcurve_lengths_from_10_to_1000(points: int) -> None:
    model = tiny_model(("lightcurve",))
    samples = raw_samples(2, modalities=("lightcurve",), lengths=[points, points // 2])
    assert torch.isfinite(model.embed(samples)["lightcurve"]).all()


@pytest.mark.parametrize(("size", "patch"), [(32, 8), (64, 8), (256, 32)])
def test_vit_sizes_and_position_interpolation(size: int, patch: int) -> None:
    encoder = create_encoder("image_vit", dim=16, depth=1, heads=2, in_chans=4, img_size=size, patch_size=patch).eval()
    flux = torch.randn(2, 4, size, size)
    out = encoder(ModalityBatch({"flux": flux}, torch.ones(2, dtype=torch.bool)))
    assert out.tokens.shape == (2, (size // patch) ** 2, 16) and out.pooled.shape == (2, 16)
    other = encoder(ModalityBatch({"flux": torch.randn(1, 4, size * 2, size * 2)}, torch.ones(1, dtype=torch.bool)))
    assert other.pooled.shape == (1, 16)
    with pytest.raises(ConfigError, match="in_chans"):
        encoder(ModalityBatch({"flux": torch.randn(1, 3, size, size)}, torch.ones(1, dtype=torch.bool)))


def test_aperture_photometry_context_lets_a_cropped_vit_see_the_whole_galaxy() -> None:
    """Light outside the ViT's centre crop reaches the embedding through the ``aperture_mag`` context token
    (and only through it), measured on the raw cutout before cropping."""
    from astrofm.model import AstroFM
    from tests.modalities.factories import tiny_config

    def model(context: bool) -> AstroFM:
        config = tiny_config(("image",))
        spec = config["modalities"]["image"]
        spec["transforms"] = [{"type": "CenterCrop", "size": 8}, *spec["transforms"]]
        if context:
            spec["transforms"].insert(0, {"type": "AperturePhotometry", "noise": [0.1] * 4})
            spec["config"]["context_fields"] = {"aperture_mag": 24}
        torch.manual_seed(0)
        return AstroFM.from_config(config).eval()

    rng = np.random.default_rng(0)
    samples = [{"image": {**image_item(rng, size=24), "flux": rng.normal(5, 1, (4, 24, 24)).astype(np.float32)}}
               for _ in range(3)]
    brighter = [{"image": {**s["image"], "flux": s["image"]["flux"].copy()}} for s in samples]
    for s in brighter:
        s["image"]["flux"][:, 3:5, 10:14] += 50.0  # 8 px above the centre: outside the 8-px crop, inside 3"
    cropped, photometric = model(False), model(True)
    torch.testing.assert_close(_embed(cropped, samples)["image"], _embed(cropped, brighter)["image"])
    assert (_embed(photometric, samples)["image"] - _embed(photometric, brighter)["image"]).abs().max() > 1e-3
    alone = _embed(photometric, samples[:1])["image"]
    torch.testing.assert_close(alone, _embed(photometric, samples)["image"][:1], atol=1e-5, rtol=1e-4)


def test_timm_backbone_by_name_with_band_count_channels() -> None:
    encoder = create_encoder("image_timm", model_name="resnet10t", in_chans=4, pool="mean").eval()
    out = encoder(ModalityBatch({"flux": torch.randn(1, 4, 32, 32)}, torch.ones(1, dtype=torch.bool)))
    assert out.pooled.shape == (1, encoder.out_dim) and out.tokens.shape[0] == 1
    vit = create_encoder("image_timm", model_name="vit_tiny_patch16_224", in_chans=4, img_size=32)
    assert vit(ModalityBatch({"flux": torch.randn(2, 4, 32, 32)}, torch.ones(2, dtype=torch.bool))).pooled.shape == (
        2, vit.out_dim)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_and_bf16_weights_run_every_encoder(device: str) -> None:
    model = tiny_model().to(device)
    samples = raw_samples(4)
    reference = model.embed(samples)
    with torch.autocast(device, dtype=torch.bfloat16):
        low = model.embed(samples)
    weights = model.to(dtype=torch.bfloat16).embed(samples)  # float32 inputs, cast by each encoder
    for m in reference:
        assert low[m].dtype == torch.float32 and torch.isfinite(low[m]).all()
        assert (low[m] * reference[m]).sum(-1).min() > 0.95  # cosine similarity to fp32
        assert torch.isfinite(weights[m]).all() and (weights[m].float() * reference[m]).sum(-1).min() > 0.95


@CUDA
def test_cuda_embeddings_equal_cpu_embeddings() -> None:
    model = tiny_model()
    samples = raw_samples(16, seed=5)
    on_cpu = model.embed(samples)
    on_gpu = model.to("cuda").embed(samples)
    for m, z in on_cpu.items():
        assert on_gpu[m].device.type == "cuda"
        torch.testing.assert_close(on_gpu[m].cpu(), z, atol=2e-3, rtol=0)  # TF32 convolutions on the GPU


@dataclass
class _CubeConfig(EncoderConfig):
    dim: int = 8


class _CubeEncoder(ModalityEncoder):
    """A fifth modality (e.g. IFU cubes), added without touching the loss or the training loop."""

    config_class = _CubeConfig
    modality = "cube"

    def __init__(self, config: _CubeConfig) -> None:
        super().__init__(config)
        self.net = nn.Linear(3, config.dim)

    @property
    def out_dim(self) -> int:
        return self.config.dim

    def forward(self, batch: ModalityBatch) -> EncoderOutput:
        pooled = self.net(batch.data["cube"].mean(dim=(-2, -1)))
        return EncoderOutput(pooled[:, None], None, pooled)


def test_a_new_modality_is_a_plugin() -> None:
    from astrofm.model import AstroFM
    from astrofm.objectives import create_objective

    register_encoder("test_cube")(_CubeEncoder)
    try:
        config = {"modalities": {"cube": {"encoder": "test_cube"},
                                 "tabular": {"encoder": "tabular_mlp", "config": {"n_features": 5, "hidden": [8]}}},
                  "embed_dim": 4}
        model = AstroFM.from_config(config)
        samples = raw_samples(6, modalities=("tabular",))
        for i, s in enumerate(samples):
            s["cube"] = {"cube": np.full((3, 4, 4), float(i), np.float32)}
        batch = collate(samples)
        loss = create_objective("contrastive", model)(model, batch).loss
        loss.backward()
        assert torch.isfinite(loss) and model.encoders["cube"].net.weight.grad.abs().sum() > 0
    finally:
        ENCODERS.pop("test_cube")
