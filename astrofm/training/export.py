"""Model weights out of training: Lightning checkpoints to pretrained folders, and weight initialization.

``export_checkpoint`` turns a training checkpoint into the folder format of
``astrofm.hub.pretrained`` (``astrofm export``); ``load_weights`` and ``init_weights``
initialize a model from a safetensors file, a pretrained folder or a Lightning
checkpoint (read with ``weights_only=True``), the latter modality by modality.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn

from astrofm.errors import ConfigError, DataFormatError
from astrofm.hub.pretrained import WEIGHTS, ModelCard, load_state, save_pretrained


def model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``AstroFM`` state dict in a safetensors file, a model folder or a Lightning checkpoint."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
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
    """Load model weights from ``path`` (see :func:`model_state`) into ``model``; names and shapes must fit."""
    load_state(model, model_state(path), path, strict=strict)


def init_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Initialize ``model`` from the weights at ``path`` (see :func:`model_state`), modality by modality.

    Every weight ``path`` holds must fit the model (name and shape); a modality whose encoder and head are absent
    from ``path`` altogether keeps its initialization, so that a model can start from another one with fewer
    modalities. Returns the modalities left at their initialization.
    """
    state = model_state(path)
    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise DataFormatError(path, f"{len(unexpected)} weights are not in the model (another modality or "
                              "architecture?)", field=unexpected[0], expected=f"names such as {sorted(own)[:3]}")
    provided = {_modality_of(name) for name in state}
    absent = sorted(set(own) - set(state))
    # a missing weight outside the per-modality encoders and heads (None), or within a modality that the source
    # does hold, means another architecture; only whole modalities may be missing
    mismatched = [name for name in absent if _modality_of(name) in provided | {None}]
    if not state or mismatched:
        raise DataFormatError(path, "weights do not cover whole modalities of the model",
                              field=mismatched[0] if mismatched else None,
                              expected="every weight of each modality it holds, and every shared weight",
                              found=f"{len(state)} weights")
    load_state(model, state, path, strict=False)
    return sorted({str(_modality_of(name)) for name in absent})


def _modality_of(name: str) -> str | None:
    """The modality a weight of an ``AstroFM`` belongs to (``encoders.<modality>.…`` or ``heads.<modality>.…``);
    None for any other weight."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[0] in ("encoders", "heads") else None


def check_checkpoint_file(path: Path) -> None:
    """Fail early, naming ``path``, if it is not a local checkpoint file (missing, or not the zip archive that
    ``torch.save`` writes: truncated or another format), instead of deep inside torch's or Lightning's reader."""
    if not path.is_file():
        raise DataFormatError(path, "no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise DataFormatError(path, "not a PyTorch checkpoint: no zip archive (truncated, or another format?)")


def export_checkpoint(checkpoint: str | Path, folder: str | Path, *, card: ModelCard | None = None) -> Path:
    """Turn a Lightning checkpoint of a ``PretrainModule`` into a pretrained-model folder (no pickle).

    The checkpoint is read with ``weights_only=True``; its ``astrofm`` entry holds the model config with
    the fitted transforms, its ``state_dict`` the weights.
    """
    from astrofm.model import model_from_config
    from astrofm.training.module import CHECKPOINT_KEY

    checkpoint = Path(checkpoint)
    check_checkpoint_file(checkpoint)
    try:
        content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError for bad files
        raise DataFormatError(checkpoint, "not a readable Lightning checkpoint (read with weights_only=True)",
                              found=str(error).splitlines()[0]) from error
    extra = content.get(CHECKPOINT_KEY) if isinstance(content, dict) else None
    if not isinstance(extra, dict) or "config" not in extra:
        raise DataFormatError(checkpoint, "not a checkpoint of an astrofm training module",
                              field=CHECKPOINT_KEY, expected="the model config saved by astrofm fit")
    model = model_from_config(extra["config"])
    load_weights(model, checkpoint)
    return save_pretrained(model, folder, card=card)
