"""Where the demo writes under its root, and the options a root was started with.

::

    DIR/demo.json        options of the run (preset, model, seed, train); a rerun must match them
    DIR/universe/        the simulated universe (unless --universe points elsewhere)
    DIR/model/           the model trained with --train (a pretrained folder)
    DIR/store/           the embedding store of every object and modality
    DIR/steps/NN-x.json  resume markers: one per finished step, with its metrics, figures and time
    DIR/cache/           intermediate arrays (UMAP maps, training checkpoints)
    DIR/*.png, DIR/metrics.json, DIR/report.html   the outputs
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from astrofm.errors import ConfigError
from astrofm.sim.pipeline import MANIFEST as SIMULATION_FILE
from astrofm.utils.atomic import atomic_write_text

PRESETS = ("tiny", "small")
DEFAULT_MODEL = "astrofm-sim-small"
OPTIONS_FILE = "demo.json"


@dataclass(frozen=True)
class DemoOptions:
    """The choices of one demo run."""

    root: Path
    preset: str = "small"
    model: str = DEFAULT_MODEL
    train: bool = False
    seed: int = 0
    #: Another folder holding (or to hold) the simulated universe; default ``root/universe``.
    universe: Path | None = None
    #: With ``train``: a LightningCLI YAML whose model and batch size to train (default: the preset's recipe).
    config: Path | None = None
    #: With ``train``: the training budget in minutes (default: the recipe's).
    train_minutes: float | None = None
    #: Simulation worker processes.
    workers: int = 2
    progress: bool = True

    def identity(self) -> dict[str, Any]:
        """What the outputs under ``root`` depend on (a rerun with other values is refused)."""
        values = asdict(self)
        for transient in ("root", "workers", "progress", "train_minutes"):
            values.pop(transient)
        if self.train:
            values["model"] = None
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


@dataclass(frozen=True)
class Layout:
    root: Path
    universe: Path

    @classmethod
    def of(cls, options: DemoOptions) -> Layout:
        root = options.root
        return cls(root, (options.universe or root / "universe"))

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def steps(self) -> Path:
        return self.root / "steps"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def figure(self, name: str) -> Path:
        return self.root / f"{name}.png"


def check_root(options: DemoOptions) -> Layout:
    """Create (or reopen) the root; refuse a root that is a file or holds a run with other options."""
    root = options.root
    if options.preset not in PRESETS:
        raise ConfigError(f"unknown preset {options.preset!r}; choose one of {list(PRESETS)}")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} is not a folder")
    manifest = root / OPTIONS_FILE
    identity = options.identity()
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved != identity:
            changed = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
            raise ConfigError(f"{root} holds a demo run with other options ({', '.join(changed)}: "
                              f"{[saved.get(k) for k in changed]}); choose another --root or delete it")
    elif root.exists() and any(p.name != "universe" for p in root.iterdir()):
        raise ConfigError(f"--root {root} is not empty and holds no demo run; choose an empty or new folder")
    elif (root / "universe").is_dir() and any((root / "universe").iterdir()) \
            and not (root / "universe" / SIMULATION_FILE).exists():
        raise ConfigError(f"{root / 'universe'} is not empty and holds no simulation; choose an empty or new --root")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create --root {root}: {error}") from error
    if not manifest.exists():
        atomic_write_text(manifest, json.dumps(identity, indent=1) + "\n")
    return Layout.of(options)
