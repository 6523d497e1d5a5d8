"""ARModel: causality, padding independence, embeddings, generation with and without the KV cache, config."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from astrofm.ar import ARModel, generate
from astrofm.data.batch import Batch, ModalityBatch
from astrofm.errors import ConfigError
from astrofm.model import model_from_config
from tests.ar.factories import tiny_ar_config, tiny_ar_model
from tests.modalities.factories import raw_samples


def _edit(batch: Batch, modality: str, field: str, fn: Callable[[Tensor], Tensor]) -> Batch:
    """A copy of ``batch`` with one field of one modality replaced by ``fn(field)``."""
    mb = batch.modalities[modality]
    data = {**mb.data, field: fn(mb.data[field].clone())}
    return Batch(batch.object_id, {**batch.modalities, modality: ModalityBatch(data, mb.presence, mb.mask, mb.meta)},
                 batch.targets)


def test_future_tokens_cannot_change_past_predictions() -> None:
    model = tiny_ar_model(("image", "spectrum"))
    batch = model.preprocess(raw_samples(3, modalities=("image", "spectrum"), lengths=[40, 40, 40]))
    base = model(batch)

    def bump_window_2(flux: Tensor) -> Tensor:  # pixels 16..23 = spectrum token 2
        flux[:, 16:24] += 3.0
        return flux

    after = model(_edit(batch, "spectrum", "flux", bump_window_2))
    assert torch.equal(after["image"].predicted, base["image"].predicted)
    torch.testing.assert_close(after["spectrum"].predicted[:, :3], base["spectrum"].predicted[:, :3], atol=0, rtol=0)
    assert (after["spectrum"].predicted[:, 3:] - base["spectrum"].predicted[:, 3:]).abs().amax() > 1e-3

    t = 5  # the image token at sequence position 5 (spiral order) is patch order[t] of the 4x4 grid
    row, col = divmod(int(model.tokenizer("image").order[t]), 4)

    def bump_patch(flux: Tensor) -> Tensor:
        flux[:, :, 2 * row: 2 * row + 2, 2 * col: 2 * col + 2] += torch.arange(16.0).reshape(4, 2, 2)
        return flux

    after = model(_edit(batch, "image", "flux", bump_patch))
    torch.testing.assert_close(after["image"].predicted[:, : t + 1], base["image"].predicted[:, : t + 1], atol=0,
                               rtol=0)
    later = (after["image"].predicted[:, t + 1:] - base["image"].predicted[:, t + 1:]).abs().amax(dim=(1, 2))
    assert later.min() > 1e-6
    assert (after["spectrum"].predicted - base["spectrum"].predicted).abs().amax(dim=(1, 2)).min() > 1e-6


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_padding_and_missing_modalities_do_not_change_real_predictions(impl: str) -> None:
    model = tiny_ar_model(("image", "spectrum"), attn_impl=impl)
    samples = raw_samples(4, modalities=("image", "spectrum"), lengths=[24, 64, 40, 33])
    del samples[2]["image"]
    del samples[3]["spectrum"]
    batch = model.preprocess(samples)
    together = model(batch)
    for i, sample in enumerate(samples):
        alone = model(model.preprocess([sample]))
        for name, p in alone.items():
            row = batch.modalities[name].index.tolist().index(i)
            length = p.valid.shape[1]
            assert torch.equal(together[name].valid[row, :length], p.valid[0])
            assert not together[name].valid[row, length:].any()
            torch.testing.assert_close(together[name].predicted[row, :length][p.valid[0]], p.predicted[0][p.valid[0]],
                                       atol=1e-5, rtol=1e-5)
    # the first spectrum token of the object without an image has nothing before it: not predicted
    assert not together["spectrum"].valid[2, 0] and together["spectrum"].valid[0, 0]


def test_sdpa_and_manual_attention_agree() -> None:
    samples = raw_samples(3, modalities=("image", "spectrum"), lengths=[24, 64, 40])
    sdpa, manual = tiny_ar_model(attn_impl="sdpa"), tiny_ar_model(attn_impl="manual")
    batch = sdpa.preprocess(samples)
    a, b = sdpa(batch), manual(batch)
    for name in a:
        torch.testing.assert_close(a[name].predicted, b[name].predicted, atol=1e-5, rtol=1e-5)


def test_embeddings_are_batch_independent_and_nan_where_absent() -> None:
    model = tiny_ar_model(("image", "spectrum"), depth=4)
    samples = raw_samples(5, modalities=("image", "spectrum"), lengths=[24, 64, 40, 33, 50])
    del samples[1]["spectrum"]
    z = model.embed(samples)
    assert z["image"].shape == (5, 16) and torch.isnan(z["spectrum"][1]).all() and torch.isfinite(z["image"]).all()
    torch.testing.assert_close(z["image"].norm(dim=1), torch.ones(5))  # unit vectors, as AstroFM's
    for i in (0, 3):
        single = model.embed([samples[i]])
        torch.testing.assert_close(single["spectrum"][0], z["spectrum"][i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(single["image"][0], z["image"][i], atol=1e-5, rtol=1e-5)
    # the default layer is the middle block (depth 4 -> block 2): block 3 does not matter, blocks <= 2 do
    with torch.no_grad():
        model.trunk.blocks[3].mlp[0].weight.mul_(3.0)
    torch.testing.assert_close(model.embed(samples)["image"], z["image"], atol=0, rtol=0)
    with torch.no_grad():
        model.trunk.blocks[2].mlp[0].weight.mul_(3.0)
    assert (model.embed(samples)["image"] - z["image"]).abs().max() > 1e-4
    model.config.embed_reduction = "last"
    last = model.embed(samples)
    assert (last["spectrum"][0] - z["spectrum"][0]).abs().max() > 1e-4


def test_last_token_embedding_is_the_hidden_state_of_the_last_real_token() -> None:
    model = tiny_ar_model(("spectrum",), embed_reduction="last", embed_layer="final", embed_normalize=False)
    samples = raw_samples(2, modalities=("spectrum",), lengths=[24, 64])
    z = model.embed(samples)
    alone = model.preprocess([samples[0]])
    tokens, _, hidden = model.hidden_states(alone)
    torch.testing.assert_close(z["spectrum"][0], hidden[0, int(tokens["spectrum"].mask[0].sum()) - 1], atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize(("modality", "prefix"), [("spectrum", 0), ("spectrum", 3), ("image", 5)])
def test_generation_with_kv_cache_equals_generation_without(modality: str, prefix: int) -> None:
    model = tiny_ar_model(("image", "spectrum"))
    samples = raw_samples(4, modalities=("image", "spectrum"), lengths=[24, 64, 40, 48])
    del samples[1]["image"]
    batch = model.preprocess(samples)
    cached = generate(model, batch, modality, prefix)
    plain = generate(model, batch, modality, prefix, use_cache=False)
    torch.testing.assert_close(cached.values, plain.values, atol=1e-5, rtol=1e-5, equal_nan=True)
    assert torch.equal(cached.generated, plain.generated)
    # the first generated token is the model's next-token prediction given the true context
    predicted = model(batch)[modality]
    rows = (cached.conditioned & cached.generated.any(dim=1)).nonzero()[:, 0]
    first = cached.generated.float().argmax(dim=1)[rows]
    torch.testing.assert_close(cached.values[rows, first], predicted.predicted[rows, first], atol=1e-5, rtol=1e-5)
    given = ~cached.generated & cached.mask & cached.conditioned[:, None]
    torch.testing.assert_close(cached.values[given], predicted.target[given], atol=0, rtol=0)
    # object 1 has no image: its spectrum has nothing to start from without a prefix
    expected = [True, True, True] if modality == "image" else [True, prefix > 0, True, True]
    assert cached.conditioned.tolist() == expected
    assert int(cached.generated[0].sum()) == int(cached.mask[0].sum()) - prefix


@pytest.mark.parametrize("prefix", [0, 1])
def test_generation_skips_columns_that_are_no_tokens(prefix: int) -> None:
    """Leading and inner spectrum windows without a good pixel are no tokens: generation walks the real ones,
    and each generated token is what the model predicts from the generated sequence itself."""
    model = tiny_ar_model(("image", "spectrum"))
    samples = raw_samples(3, modalities=("image", "spectrum"), lengths=[64, 64, 64])
    for sample in samples:
        sample["spectrum"]["mask"][:] = False
    samples[0]["spectrum"]["mask"][:16] = True  # windows 0 and 1 (8 pixels each)
    samples[1]["spectrum"]["mask"][24:40] = True  # windows 3 and 4
    batch = model.preprocess(samples)
    out = generate(model, batch, "spectrum", prefix)
    mask = out.mask
    assert mask[0, :2].sum() == 0 and mask[1, 3:5].sum() == 0
    after_prefix = mask & (mask.long().cumsum(dim=1) > prefix)
    assert torch.equal(out.generated, after_prefix)
    spectrum = batch["spectrum"]
    flux = model.tokenizer("spectrum").to_flux(out.values, spectrum.data["flux"].shape[1])
    fed_back = Batch(batch.object_id, {**batch.modalities, "spectrum": ModalityBatch(
        {**spectrum.data, "flux": flux.to(spectrum.data["flux"].dtype)}, spectrum.presence, spectrum.mask,
        spectrum.meta)}, batch.targets)
    teacher_forced = model(fed_back)["spectrum"].predicted
    torch.testing.assert_close(out.values[out.generated], teacher_forced[out.generated], atol=1e-4, rtol=1e-4)


def test_config_round_trips_through_json_and_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    model = tiny_ar_model(("image", "spectrum", "lightcurve", "tabular"), order=["tabular", "image", "spectrum",
                                                                                 "lightcurve"])
    samples = raw_samples(3)
    model.fit_transforms(samples)
    text = json.dumps(model.config.to_dict())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    again = model_from_config(json.loads(text))
    assert isinstance(again, ARModel) and again.modalities == ("tabular", "image", "spectrum", "lightcurve")
    again.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    again.eval()
    a, b = model.embed(samples), again.embed(samples)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=0, rtol=0)
    with pytest.raises(ConfigError, match="order"):
        ARModel.from_config(tiny_ar_config(("image", "spectrum"), order=["image"]))
    with pytest.raises(ConfigError, match="unknown AR model option"):
        ARModel.from_config({**tiny_ar_config(), "width": 3})


def test_embeddings_go_through_the_store_and_the_probes_like_astrofm_ones(synthetic_root: Path, tmp_path: Path
                                                                         ) -> None:
    from astrofm.data.dataset import MMUDataset
    from astrofm.downstream.probes import KNNProbe
    from astrofm.downstream.store import EmbeddingStore
    from astrofm.inference import embed_to_store

    model = tiny_ar_model(("image", "spectrum"))
    dataset = MMUDataset(synthetic_root / "gal")
    model.fit_transforms([dataset.get(i) for i in dataset.catalog.object_id[:40]])
    store = embed_to_store(model, dataset, tmp_path / "store", batch_size=32, progress=False)
    with EmbeddingStore.open(store) as opened:
        ids = opened.object_ids("image")
        vectors = np.array(opened.vectors("image"))
        assert opened.count("image") == opened.count("spectrum") == 144 and opened.dim("image") == 16
    direct = model.embed([dataset.get(ids[7])])["image"][0].numpy()
    np.testing.assert_allclose(vectors[7], direct, atol=1e-5)
    target = vectors[:, 0] * 3 + vectors[:, 1]  # a property that lives in the embedding
    probe = KNNProbe(k=5).fit(vectors[:100], target[:100])
    assert probe.score(vectors[100:], target[100:]) > 0.3
