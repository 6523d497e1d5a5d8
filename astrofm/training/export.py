"""Model weights in and out of training: safetensors + config.json, and Lightning checkpoints.

``save_model`` writes ``config.json`` (the ``AstroFMConfig``, fitted
transforms included) and ``model.safetensors`` into a folder; ``load_model``
reads them back. ``load_weights`` initializes a model from either a
safetensors file or a Lightning checkpoint (read with ``weights_only=True``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from astrofm.errors import ConfigError, DataFormatError
from astrofm.model import AstroFM, AstroFMConfig
from astrofm.utils.atomic import atomic_path, atomic_write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``AstroFM`` state dict in a safetensors file, a model folder or a Lightning checkpoint."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.exists():
        raise ConfigError(f"no weights at {path}")
    if path.suffix == ".safetensors":
        return load_file(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if state is None:
        raise DataFormatError(path, "not a Lightning checkpoint", expected="a 'state_dict' entry")
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> None:
    """Load model weights from ``path`` (see :func:`model_state`) into ``model``."""
    missing, unexpected = model.load_state_dict(model_state(path), strict=False)
    if strict and (missing or unexpected):
        raise DataFormatError(path, "weights do not match the model", expected=f"missing none (got {missing[:5]})",
                              found=f"unexpected {unexpected[:5]}")


def save_model(model: AstroFM, directory: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (atomically) into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(directory / CONFIG_NAME, model.config.to_json())
    return directory


def load_model(directory: str | Path) -> AstroFM:
    """An ``AstroFM`` from a folder written by :func:`save_model`."""
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not config_path.exists():
        raise ConfigError(f"no {CONFIG_NAME} in {directory}")
    model = AstroFM.from_config(AstroFMConfig.from_json(config_path.read_text()))
    load_weights(model, directory / WEIGHTS_NAME)
    return model
