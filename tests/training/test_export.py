"""The model object: JSON config round trip, safetensors weights, fitted transforms inside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from astrofm import AstroFM
from astrofm.errors import ConfigError, DataFormatError
from astrofm.model import AstroFMConfig
from astrofm.training import export_checkpoint
from astrofm.training.export import model_state
from astrofm.training.module import CHECKPOINT_KEY
from tests.modalities.factories import raw_samples, tiny_config, tiny_model


def test_config_round_trips_through_json_and_rebuilds_the_architecture(tmp_path: Path) -> None:
    config = tiny_config()
    config["modalities"]["tabular"]["transforms"] = [{"type": "Standardize"}]  # to be fitted
    model = AstroFM.from_config(config)
    assert model.needs_fit
    with pytest.raises(ConfigError, match="not fitted"):
        model.preprocess(raw_samples(2))
    train = raw_samples(50, seed=1)
    model.fit_transforms(train)
    assert not model.needs_fit
    stats = model.config.modalities["tabular"].transforms[0]
    expected = np.nanmean(np.stack([s["tabular"]["values"] for s in train]), axis=0)
    np.testing.assert_allclose(stats["mean"], expected, rtol=1e-5)
    text = model.config.to_json()
    assert AstroFMConfig.from_json(text).to_dict() == json.loads(text)

    model.save_pretrained(tmp_path / "m")
    loaded = AstroFM.from_pretrained(tmp_path / "m")
    samples = raw_samples(5, seed=2)
    model.eval()
    for m, z in model.embed(samples).items():
        torch.testing.assert_close(loaded.embed(samples)[m], z, equal_nan=True)
    assert set(model_state(tmp_path / "m")) == set(model.state_dict())


def test_embed_marks_absent_objects_with_nan_and_takes_raw_samples() -> None:
    model = tiny_model(("image", "spectrum"))
    samples = raw_samples(4, modalities=("image", "spectrum"))
    del samples[2]["spectrum"]
    z = model.embed(samples)
    assert torch.isnan(z["spectrum"][2]).all() and torch.isfinite(z["spectrum"][[0, 1, 3]]).all()
    torch.testing.assert_close(z["image"].norm(dim=-1), torch.ones(4))
    only_images = model.embed([{k: v for k, v in s.items() if k != "spectrum"} for s in samples])
    assert torch.isnan(only_images["spectrum"]).all()


def test_bad_configs_are_reported() -> None:
    with pytest.raises(ConfigError, match="at least one modality"):
        AstroFMConfig.from_dict({"modalities": {}})
    with pytest.raises(ConfigError, match="unknown option"):
        AstroFMConfig.from_dict({"modalities": {"image": {"encoder": "image_vit", "extra": 1}}})
    with pytest.raises(ConfigError, match="unknown model option"):
        AstroFMConfig.from_dict({"modalities": {"image": {"encoder": "image_vit"}}, "embed_dims": 3})


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("code ran on load",))


def test_a_lightning_checkpoint_exports_to_a_pretrained_folder(tmp_path: Path) -> None:
    model = tiny_model(("image", "tabular"))
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    checkpoint = {"state_dict": state, CHECKPOINT_KEY: {"config": model.config.to_dict()}, "global_step": 3}
    torch.save(checkpoint, tmp_path / "last.ckpt")
    folder = export_checkpoint(tmp_path / "last.ckpt", tmp_path / "exported")
    loaded = AstroFM.from_pretrained(folder)
    samples = raw_samples(6, modalities=("image", "tabular"), seed=3)
    model.eval()
    for name, z in model.embed(samples).items():
        torch.testing.assert_close(loaded.embed(samples)[name], z)

    torch.save({"state_dict": state}, tmp_path / "plain.ckpt")
    with pytest.raises(DataFormatError, match="not a checkpoint of an astrofm training module"):
        export_checkpoint(tmp_path / "plain.ckpt", tmp_path / "other")
    torch.save({"state_dict": state, "extra": _Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(DataFormatError, match="weights_only=True"):
        export_checkpoint(tmp_path / "evil.ckpt", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_exporting_a_missing_or_truncated_checkpoint_names_the_file(tmp_path: Path) -> None:
    model = tiny_model(("image",))
    torch.save({"state_dict": model.state_dict(), CHECKPOINT_KEY: {"config": model.config.to_dict()}},
               tmp_path / "whole.ckpt")
    (tmp_path / "cut.ckpt").write_bytes((tmp_path / "whole.ckpt").read_bytes()[:200])
    with pytest.raises(DataFormatError, match=r"missing\.ckpt: no such checkpoint file"):
        export_checkpoint(tmp_path / "missing.ckpt", tmp_path / "out")
    with pytest.raises(DataFormatError, match=r"cut\.ckpt: not a PyTorch checkpoint"):
        export_checkpoint(tmp_path / "cut.ckpt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_init_from_a_model_with_fewer_modalities_keeps_the_others_at_their_init(tmp_path: Path) -> None:
    """A four-modality model started from an image + spectrum one (the zoo's astrofm-sim-small recipe)."""
    from safetensors.torch import save_file

    from astrofm.training import PretrainModule
    from astrofm.training.export import init_weights

    galaxies = tiny_model(("image", "spectrum"), seed=1)
    galaxies.save_pretrained(tmp_path / "galaxies")
    torch.manual_seed(2)
    fresh = AstroFM.from_config(tiny_config()).state_dict()
    torch.manual_seed(2)
    module = PretrainModule(tiny_config(), init_from=str(tmp_path / "galaxies"))
    for name, value in module.model.state_dict().items():
        source = galaxies.state_dict() if name.split(".")[1] in ("image", "spectrum") else fresh
        torch.testing.assert_close(value, source[name], rtol=0, atol=0, msg=name)
    assert module.model.state_dict().keys() == fresh.keys()

    model = AstroFM.from_config(tiny_config(("image", "spectrum")))
    assert init_weights(model, tmp_path / "galaxies") == []
    with pytest.raises(DataFormatError, match="not in the model") as info:  # a modality the model lacks
        init_weights(AstroFM.from_config(tiny_config(("image",))), tmp_path / "galaxies")
    assert info.value.file == str(tmp_path / "galaxies") and info.value.field.startswith("encoders.spectrum.")
    partial = {k: v for k, v in galaxies.state_dict().items() if not k.startswith("heads.spectrum.")}
    save_file(partial, tmp_path / "partial.safetensors")
    with pytest.raises(DataFormatError, match="whole modalities") as info:  # spectrum encoder without its head
        init_weights(model, tmp_path / "partial.safetensors")
    assert info.value.field.startswith("heads.spectrum.")
