"""Save and load pretrained models: ``config.json`` + ``model.safetensors`` + a model card. No pickle.

A saved folder holds:

- ``config.json``: ``{"format_version", "astrofm_version", "model": <AstroFMConfig>, "card": {...}}``;
  the model config carries the architecture, the modalities and the fitted
  preprocessing statistics;
- ``model.safetensors``: every tensor of the state dict;
- ``README.md``: the model card (training data, objective, metrics, license);
- ``manifest.json``: the SHA-256 of each file, checked when the folder is loaded.

The folder is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from astrofm._version import __version__
from astrofm.errors import ConfigError, DataFormatError
from astrofm.hub.cache import sha256_of
from astrofm.hub.registry import find_entry
from astrofm.hub.resolve import MANIFEST, resolve_pretrained
from astrofm.utils.atomic import atomic_dir

if TYPE_CHECKING:
    from astrofm.ar import ARModel
    from astrofm.model import AstroFM

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"


@dataclass
class ModelCard:
    """What a person needs to know before using a model."""

    name: str = "astrofm-model"
    description: str = ""
    training_data: str = ""
    objective: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    license: str = "MIT"
    command: str = ""

    def to_markdown(self, model: AstroFM | ARModel) -> str:
        lines = [
            "---", f"license: {self.license.lower()}", "library_name: astrofm", "tags: [astronomy, astrofm]", "---",
            "", f"# {self.name}", "", self.description or "An astrofm multimodal embedding model.", "",
            "## Model", "",
            f"- modalities: {', '.join(model.modalities)}",
            f"- shared embedding dimension: {model.embed_dim}",
            f"- parameters: {model.num_parameters():,}",
            f"- astrofm version: {__version__}", "",
            "## Training", "", f"- data: {self.training_data or 'not recorded'}",
            f"- objective: {self.objective or 'not recorded'}",
        ]
        if self.command:
            lines.append(f"- reproduce with: `{self.command}`")
        lines += ["", "## Metrics", ""]
        lines += [f"| {k} | {v:.4g} |" for k, v in self.metrics.items()] if self.metrics else ["not recorded"]
        if self.metrics:
            lines.insert(len(lines) - len(self.metrics), "| metric | value |")
            lines.insert(len(lines) - len(self.metrics), "|---|---|")
        kind = type(model).__name__
        lines += ["", "## Use", "", "```python", f"from {type(model).__module__} import {kind}",
                  f'model = {kind}.from_pretrained("{self.name}")', "vectors = model.embed(samples)", "```",
                  "", "## License", "", self.license, ""]
        return "\n".join(lines)


def save_pretrained(model: AstroFM | ARModel, folder: str | Path, *, card: ModelCard | None = None) -> Path:
    """Write ``model`` to ``folder`` (replaced atomically if it exists)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    card = card or ModelCard(name=folder.name)
    with atomic_dir(folder) as tmp:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"astrofm_version": __version__, "format": "pt"})
        _sort_header_metadata(tmp / WEIGHTS)
        config = {"format_version": FORMAT_VERSION, "astrofm_version": __version__,
                  "model": model.config.to_dict(), "card": asdict(card)}
        (tmp / CONFIG).write_text(json.dumps(config, indent=1))
        (tmp / CARD).write_text(card.to_markdown(model))
        files = {name: sha256_of(tmp / name) for name in (CONFIG, WEIGHTS, CARD)}
        (tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=1))
    return folder


def _sort_header_metadata(path: Path) -> None:
    """Rewrite the ``__metadata__`` of a safetensors header with its keys sorted, in place (same length).

    safetensors writes metadata keys in a random order on every save (its issue #584), so the same weights
    would get a new SHA-256 each time, breaking the checksums of a registry entry re-saved with a new card.
    """
    with open(path, "r+b") as file:
        length = int.from_bytes(file.read(8), "little")
        header = file.read(length)
        metadata = json.loads(header).get("__metadata__") or {}

        def compact(items: Mapping[str, str]) -> bytes:
            return json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()

        written, canonical = compact(metadata), compact(dict(sorted(metadata.items())))
        if written != canonical and header.count(written) == 1:
            file.seek(8)
            file.write(header.replace(written, canonical))


def read_config(folder: Path) -> Mapping[str, Any]:
    """The parsed ``config.json`` of a saved model, with version checks."""
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise DataFormatError(path, "not an astrofm model folder: no config.json") from error
    except json.JSONDecodeError as error:
        raise DataFormatError(path, "config.json is not valid JSON", found=str(error)) from error
    version = config.get("format_version")
    if not isinstance(version, int) or "model" not in config:
        raise DataFormatError(path, "not an astrofm model config", field="format_version",
                              expected=f"an integer <= {FORMAT_VERSION} and a 'model' entry", found=version)
    if version > FORMAT_VERSION:
        raise DataFormatError(path, f"saved by astrofm {config.get('astrofm_version')} in a newer format; "
                                    "upgrade astrofm (pip install -U astrofm-mmu)", field="format_version",
                              expected=f"<= {FORMAT_VERSION}", found=version)
    return config


def load_pretrained(source: str | Path, *, revision: str | None = None, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> Any:
    """Load a model (an ``AstroFM``, or an ``ARModel`` for an autoregressive config) from a folder,
    registry name, URL or hub id; in eval mode on ``device``/``dtype``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from astrofm.model import model_from_config

    entry = find_entry(str(source))
    folder = resolve_pretrained(source, revision=revision)
    if entry is not None and entry.format == "astropt":  # a peer's checkpoint, converted on load
        from astrofm.hub.astropt import load_astropt

        model = load_astropt(folder / next(iter(entry.files)))
        return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device=device)
    config = read_config(folder)
    try:
        model = model_from_config(config["model"])
    except (ConfigError, TypeError, KeyError, ValueError) as error:
        raise DataFormatError(folder / CONFIG, "the model config cannot be built by this astrofm",
                              field="model", found=str(error)) from error
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as error:
        raise DataFormatError(folder / WEIGHTS, "unreadable safetensors file", found=str(error)) from error
    load_state(model, state, folder / WEIGHTS)
    model.eval()
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device=device)


def load_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str | Path, *,
               strict: bool = True) -> None:
    """Load ``state`` into ``model`` once it is known to fit: the same names (with ``strict``) and, for every
    name they share, the same shape; otherwise a DataFormatError naming ``where`` and the first mismatches."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise DataFormatError(where, "weights do not match the model's architecture",
                              expected=f"missing {missing[:5]}", found=f"unexpected {unexpected[:5]}")
    reshaped = [name for name, value in own.items() if name in state and state[name].shape != value.shape]
    if reshaped:
        raise DataFormatError(where, f"{len(reshaped)} weights have other shapes than the model's (another width, "
                              "depth, patch or band count?)", field=reshaped[0],
                              expected=[tuple(own[n].shape) for n in reshaped[:3]],
                              found=[tuple(state[n].shape) for n in reshaped[:3]])
    model.load_state_dict(state, strict=False)


def push_to_hub(model: AstroFM | ARModel, repo_id: str, *, card: ModelCard | None = None, private: bool = False,
                token: str | None = None, commit_message: str = "Upload astrofm model") -> str:
    """Save ``model`` and upload the folder to the Hugging Face hub repo ``repo_id`` (created if needed).

    Honours ``HF_ENDPOINT`` and the usual ``huggingface_hub`` login; returns the commit URL.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="astrofm-push-") as tmp:
        folder = save_pretrained(model, Path(tmp) / repo_id.rsplit("/", 1)[-1],
                                 card=card or ModelCard(name=repo_id))
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


def model_identity(folder: str | Path) -> tuple[str, str]:
    """(name, version) of a saved model: its card's name and the first 16 hex of its weights' SHA-256."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    files = json.loads(manifest.read_text())["files"] if manifest.exists() else {}
    digest = files.get(WEIGHTS) or sha256_of(folder / WEIGHTS)
    return card_of(folder).name, digest[:16]


def card_of(folder: str | Path) -> ModelCard:
    """The model card stored in a saved model's config."""
    config = read_config(Path(folder))
    try:
        return ModelCard(**config.get("card", {}))
    except TypeError as error:
        raise ConfigError(f"{folder}: malformed model card: {error}") from error
