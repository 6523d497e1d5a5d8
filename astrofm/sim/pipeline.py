"""Run a simulation: plan the work units, make the missing ones, then write truth and splits.

``<root>/simulation.json`` records the format, preset, seed and config and a
``complete`` flag. A run resumes an unfinished simulation of the same seed
and config (finished units are kept, temporary files of interrupted writes
are deleted); a finished one is returned untouched;
a root holding another simulation is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from astrofm._version import __version__
from astrofm.errors import ConfigError
from astrofm.sim import splits as split_manifest
from astrofm.sim.config import SimConfig, is_integer, make_config
from astrofm.sim.truth import TRUTH_DIR, load_anomalies, load_truth, merge_parts, part_path
from astrofm.sim.units import DATASETS, Unit, plan, run_unit
from astrofm.utils.atomic import atomic_write_text, remove_temp_files

log = logging.getLogger(__name__)

MANIFEST = "simulation.json"
FORMAT = "astrofm-sim/1"


@dataclass(frozen=True)
class SimulatedUniverse:
    """A simulated universe on disk: its MMU datasets, truth catalog and split manifest."""

    root: Path
    preset: str
    seed: int
    config: SimConfig

    @property
    def datasets(self) -> dict[str, Path]:
        """Dataset name (legacysurvey, desi, asassn, gaia, lamost) -> its ``<survey>/<subset>`` folder."""
        return {name: self.root / folder for name, folder in DATASETS.items()}

    @property
    def truth_dir(self) -> Path:
        return self.root / TRUTH_DIR

    @property
    def splits_path(self) -> Path:
        return self.root / split_manifest.SPLITS_FILE

    def dataset(self, name: str, **kwargs: Any) -> Any:
        """An :class:`astrofm.data.MMUDataset` of one dataset (kwargs go to its constructor)."""
        from astrofm.data.dataset import MMUDataset

        if name not in DATASETS:
            raise ConfigError(f"unknown simulated dataset {name!r}; choose one of {sorted(DATASETS)}")
        return MMUDataset(self.datasets[name], **kwargs)

    def truth(self, population: str = "galaxies") -> dict[str, Any]:
        """The truth table of ``galaxies`` or ``stars`` (see :mod:`astrofm.sim.truth`)."""
        return load_truth(self.root, population)

    def anomalies(self) -> dict[str, Any]:
        """The anomaly table of every object."""
        return load_anomalies(self.root)

    def splits(self) -> dict[str, Any]:
        """The split manifest (see :mod:`astrofm.sim.splits`)."""
        return split_manifest.load_splits(self.root)


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an astrofm simulation manifest (format {manifest.get('format')!r})")
    return manifest


def _write_manifest(root: Path, preset: str, seed: int, config: SimConfig, units: list[Unit], complete: bool) -> None:
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit.population] = counts.get(unit.population, 0) + unit.count
    manifest = {"format": FORMAT, "astrofm_version": __version__, "preset": preset, "seed": seed,
                "config": config.to_dict(), "objects": counts, "units": len(units), "datasets": DATASETS,
                "complete": complete}
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def open_universe(root: str | Path) -> SimulatedUniverse:
    """A finished simulation at ``root`` (raises ``ConfigError`` if there is none or it is unfinished)."""
    root = Path(root)
    manifest = _read_manifest(root)
    if manifest is None or not manifest["complete"]:
        raise ConfigError(f"{root}: no finished simulation here; run `astrofm simulate --root {root}`")
    return SimulatedUniverse(root, manifest["preset"], manifest["seed"], SimConfig.from_dict(manifest["config"]))


def simulate(root: str | Path, preset: str = "tiny", seed: int = 0, *, workers: int = 1, progress: bool = True,
             **overrides: Any) -> SimulatedUniverse:
    """Write (or finish) a simulated universe under ``root`` and return it.

    ``overrides`` replace fields of the preset's :class:`SimConfig`. ``workers``
    processes make units in parallel; the data do not depend on their number.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    if not is_integer(seed) or seed < 0:
        raise ConfigError(f"simulation config: field 'seed' must be an integer >= 0, "
                          f"got {seed!r} ({type(seed).__name__})")
    seed = int(seed)
    config = make_config(preset, **overrides)
    existing = _read_manifest(root)
    if existing is not None:
        if existing["seed"] != seed or SimConfig.from_dict(existing["config"]) != config:
            raise ConfigError(f"{root} holds another simulation (seed {existing['seed']}, preset "
                              f"{existing['preset']!r}); choose an empty --root or delete that folder")
        if existing["complete"]:
            log.info("simulation at %s is complete", root)
            return SimulatedUniverse(root, existing["preset"], seed, config)
        for stale in remove_temp_files(root):  # left by writes that the interruption cut short
            log.info("removed the temporary file %s of an interrupted write", stale)
    elif root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} is not empty and holds no simulation; choose an empty --root")
    units = plan(config, seed)
    if existing is None:
        root.mkdir(parents=True, exist_ok=True)
        _write_manifest(root, preset, seed, config, units, complete=False)
    todo = [u for u in units if not part_path(root, u.population, u.pixel).exists()]
    log.info("simulating %d of %d units into %s with %d worker(s)", len(todo), len(units), root, workers)
    with tqdm(total=sum(u.count for u in units), initial=sum(u.count for u in units if u not in todo),
              unit="obj", desc="simulate", disable=not progress, smoothing=0.1) as bar:
        if workers <= 1:
            for unit in todo:
                run_unit(root, config, seed, unit)
                bar.update(unit.count)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(run_unit, root, config, seed, u): u for u in todo}
                for future in as_completed(futures):
                    future.result()
                    bar.update(futures[future].count)
    _finish(root, preset, seed, config, units)
    return SimulatedUniverse(root, preset, seed, config)


def _finish(root: Path, preset: str, seed: int, config: SimConfig, units: list[Unit]) -> None:
    """Merge the truth parts, write the split manifest, mark the simulation complete, drop the parts."""
    parts: dict[str, list[Path]] = {}
    for unit in units:
        parts.setdefault(unit.population, []).append(part_path(root, unit.population, unit.pixel))
    merge_parts(root, parts)
    truth = {population: load_truth(root, population) for population in parts}
    manifest = split_manifest.build(truth, load_anomalies(root), seed, config.split_fractions)
    split_manifest.write(root, manifest)
    _write_manifest(root, preset, seed, config, units, complete=True)
    for paths in parts.values():
        for path in paths:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (root / TRUTH_DIR / "parts").rmdir()
    log.info("simulation complete: %s", root)
