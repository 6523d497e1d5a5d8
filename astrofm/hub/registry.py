"""astrofm's registry of pretrained models (``astrofm.list_pretrained()``, ``astrofm models``).

Each entry names where the weights come from and the SHA-256 of every file:

- ``{"package": "astrofm-sim-small"}``: shipped inside the astrofm package;
- ``{"url": "https://.../folder/"}``: files fetched from a folder URL;
- ``{"url": "https://.../model.tar.gz"}``: an archive, checked then unpacked;
- ``{"hub": "owner/repo", "revision": "..."}``: a Hugging Face hub repo.

``external`` entries are the peers' published models that astrofm can load
(through a converter), with their own license.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from astrofm.errors import ConfigError


@dataclass(frozen=True)
class RegistryEntry:
    """One pretrained model: identity, provenance, checksums and headline metrics."""

    name: str
    description: str
    modalities: list[str]
    source: dict[str, str]
    files: dict[str, str]  # file name -> SHA-256
    #: "astrofm" (config.json + model.safetensors), or "astropt" (one AstroPT ckpt.pt, converted on load)
    format: str = "astrofm"
    size_mb: float = 0.0
    parameters: int = 0
    data: str = ""
    objective: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    license: str = "MIT"
    external: bool = False
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load() -> dict[str, RegistryEntry]:
    text = resources.files("astrofm.hub").joinpath("registry.json").read_text()
    return {e["name"]: RegistryEntry(**e) for e in json.loads(text)["models"]}


def list_pretrained() -> list[RegistryEntry]:
    """Every model in astrofm's registry."""
    return list(_load().values())


def find_entry(name: str) -> RegistryEntry | None:
    """The registry entry of ``name``, or None if the registry has no such model."""
    return _load().get(name)


def get_entry(name: str) -> RegistryEntry:
    """The registry entry of ``name``; a clear error lists the known names."""
    entries = _load()
    if name not in entries:
        raise ConfigError(f"no pretrained model named {name!r}; known: {sorted(entries)}")
    return entries[name]
