"""Fine-tuning: an encoder plus a head trained on labels, from scratch or from pretrained weights."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from astrofm.errors import ConfigError
from astrofm.training import AstroFMDataModule, FineTuneModule, PretrainModule
from astrofm.training.finetune import encode_labels
from tests.helpers.devices import DEVICES
from tests.modalities.factories import raw_samples, tiny_config, tiny_model


def test_labels_are_encoded_without_a_python_loop_over_classes() -> None:
    labels, valid = encode_labels(["RRAB", "EW", None, "XX", "EW"], ["EW", "RRAB", "M"], torch.device("cpu"))
    assert labels.tolist()[:2] == [1, 0] and labels[4] == 0
    assert valid.tolist() == [True, True, False, False, True]
    values, valid = encode_labels(torch.tensor([0.5, float("nan")], dtype=torch.float64), None, torch.device("cpu"))
    assert valid.tolist() == [True, False] and values.dtype == torch.float32


@pytest.mark.parametrize("classes", [["0", "1", "2"], [0, 1, 2]])
def test_integer_class_labels_match_their_classes(classes: list) -> None:
    collated = torch.tensor([2.0, 0.0, float("nan"), 1.0, 7.0], dtype=torch.float64)  # a numeric catalog column
    labels, valid = encode_labels(collated, classes, torch.device("cpu"))
    assert valid.tolist() == [True, True, False, True, False]
    assert labels[valid].tolist() == [2, 0, 1]


def _data(root: Path) -> AstroFMDataModule:
    return AstroFMDataModule(str(root), [{"datasets": {"gal": {"path": "gal", "target_columns": ["CLASS", "Z"]}}}],
                             split=None, batch_size=32, block_size=64, buffer_size=128)


class _Modes(L.Callback):
    """Records (model in train mode, head in train mode) at every training step."""

    def __init__(self) -> None:
        self.seen: set[tuple[bool, bool]] = set()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.add((all(m.training for m in module.model.modules()),
                       all(m.training for m in module.head.modules())))


def _trainer(steps: int, *callbacks: L.Callback) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                     callbacks=list(callbacks))


@pytest.mark.slow
def test_finetune_from_pretrained_and_from_scratch(synthetic_root: Path, tmp_path: Path) -> None:
    config = tiny_config(("image", "spectrum"))
    L.seed_everything(0)
    pretrain = PretrainModule(config, optimizer={"warmup_steps": 1})
    _trainer(3).fit(pretrain, datamodule=_data(synthetic_root))
    pretrain.model.save_pretrained(tmp_path / "pretrained")

    L.seed_everything(1)
    tuned = FineTuneModule(config, ["spectrum"], "CLASS", classes=["A", "B"], init_from=str(tmp_path / "pretrained"),
                           optimizer={"warmup_steps": 1, "lr": 3e-3})
    for name, p in tuned.model.state_dict().items():  # the pretrained weights were loaded
        torch.testing.assert_close(p, pretrain.model.state_dict()[name])
    data = _data(synthetic_root)
    tuned.model.eval()  # as from_pretrained returns it
    modes = _Modes()
    _trainer(4, modes).fit(tuned, datamodule=data)
    assert modes.seen == {(True, True)}  # trained in train mode, after validation too
    batch = next(iter(data.val_dataloader()))
    predicted, valid = tuned.predict_batch(batch)
    assert valid.all() and set(predicted.tolist()) <= {0, 1}

    scratch = FineTuneModule(config, ["image", "spectrum"], "Z", task="regression", target_mean=0.5, target_std=0.3,
                             freeze=True, head_hidden=[])
    frozen = {k: v.clone() for k, v in scratch.model.state_dict().items()}
    modes = _Modes()
    _trainer(3, modes).fit(scratch, datamodule=_data(synthetic_root))
    assert modes.seen == {(False, True)}  # frozen encoders stay in eval mode, the head trains
    for name, p in scratch.model.state_dict().items():  # frozen encoders: a probe on fixed features
        torch.testing.assert_close(p, frozen[name])
    values, _ = scratch.predict_batch(batch)
    assert values.shape == (len(batch),) and np.isfinite(values.detach().numpy()).all()


def test_finetune_options_are_checked() -> None:
    config = tiny_config(("image",))
    with pytest.raises(ConfigError, match="classes"):
        FineTuneModule(config, ["image"], "CLASS")
    with pytest.raises(ConfigError, match="not in the model"):
        FineTuneModule(config, ["spectrum"], "Z", task="regression")


@pytest.mark.parametrize("device", DEVICES)
def test_predictions_are_made_in_eval_mode_without_grad_on_the_module_device(device: str) -> None:
    config = tiny_config(("image", "spectrum"), dropout=0.5)
    module = FineTuneModule(config, ["image", "spectrum"], "Z", task="regression", target_mean=0.5, target_std=0.3)
    module.to(device).train()
    batch = tiny_model(("image", "spectrum")).preprocess(raw_samples(6, modalities=("image", "spectrum")))
    values, valid = module.predict_batch(batch)  # a CPU batch, as loaders give
    assert module.training and values.device.type == device and not values.requires_grad and bool(valid.all())
    torch.testing.assert_close(module.predict_batch(batch)[0], values, atol=0, rtol=0)  # no dropout: eval mode
