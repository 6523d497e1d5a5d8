"""Same seed, same bytes (whatever the number of workers); interrupted runs resume; roots are never clobbered."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from astrofm.cli import main
from astrofm.errors import ConfigError
from astrofm.sim import simulate

SMALL = {"n_galaxies": 160, "n_stars": 160, "galaxies_per_shard": 40, "stars_per_shard": 40}


def digest(root: Path) -> dict[str, str]:
    """SHA-256 of every array of every HDF5 file under ``root``, keyed by ``file:column``."""
    out = {}
    for path in sorted(Path(root).rglob("*.hdf5")):
        with h5py.File(path, "r") as handle:
            for name in sorted(handle):
                out[f"{path.relative_to(root)}:{name}"] = hashlib.sha256(handle[name][()].tobytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference") / "sim"
    simulate(root, preset="tiny", seed=7, workers=1, progress=False, **SMALL)
    return digest(root)


def test_same_seed_same_bytes_with_two_workers(reference, tmp_path):
    simulate(tmp_path / "sim", preset="tiny", seed=7, workers=2, progress=False, **SMALL)
    assert digest(tmp_path / "sim") == reference


def test_another_seed_gives_other_data(reference, tmp_path):
    simulate(tmp_path / "sim", preset="tiny", seed=8, progress=False, **SMALL)
    other = digest(tmp_path / "sim")
    for column in ("image_array", "spectrum_flux", "lightcurve", "parallax"):
        keys = [k for k in reference if k.endswith(f":{column}")]
        assert keys and all(reference[k] != other.get(k) for k in keys)


def test_killed_run_resumes_to_the_same_bytes(reference, tmp_path):
    root = tmp_path / "sim"
    command = [sys.executable, "-m", "astrofm", "simulate", "--root", str(root), "--seed", "7", "--no-progress",
               *(f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items())]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = root / "truth" / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.hdf5"))) < 2:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= len(list(parts.glob("*.hdf5"))) < 8, "the run was not interrupted half-way"
    assert not (root / "splits.json").exists()
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert digest(root) == reference


def test_finished_root_is_reused_and_other_runs_refused(tmp_path):
    root = tmp_path / "sim"
    simulate(root, preset="tiny", seed=1, n_galaxies=20, n_stars=20, progress=False)
    stamp = (root / "splits.json").stat().st_mtime_ns
    simulate(root, preset="tiny", seed=1, n_galaxies=20, n_stars=20, progress=False)
    assert (root / "splits.json").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="another simulation"):
        simulate(root, preset="tiny", seed=2, n_galaxies=20, n_stars=20, progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        simulate(tmp_path / "busy", preset="tiny", n_galaxies=20, n_stars=20, progress=False)


def test_cli_writes_a_universe(tmp_path, capsys):
    root = tmp_path / "cli"
    code = main(["simulate", "--root", str(root), "--preset", "tiny", "--seed", "3", "--n-galaxies", "30",
                 "--n-stars", "30", "--no-progress"])
    assert code == 0
    assert "legacysurvey" in capsys.readouterr().out
    for folder in ("legacysurvey/dr10_south_21", "desi/dr1_main", "asassn/variables", "gaia/dr3", "lamost/dr8"):
        assert list((root / folder).glob("healpix=*/001-of-001.hdf5"))
    assert (root / "truth" / "galaxies.hdf5").exists() and (root / "splits.json").exists()


def test_resume_deletes_temporary_files_of_interrupted_writes(tmp_path, monkeypatch):
    """A run killed mid-write leaves ``.<name>.<random>[.ext].tmp`` files; the resumed tree equals a fresh one."""
    from astrofm.sim import pipeline

    tiny = {"n_galaxies": 20, "n_stars": 20, "galaxies_per_shard": 10, "stars_per_shard": 10, "image_size": 16}
    simulate(tmp_path / "fresh", preset="tiny", seed=4, progress=False, **tiny)
    root = tmp_path / "resumed"
    real_run_unit = pipeline.run_unit
    done: list[int] = []

    def interrupted(*args, **kwargs):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(1)
        return real_run_unit(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_unit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate(root, preset="tiny", seed=4, progress=False, **tiny)
    monkeypatch.setattr(pipeline, "run_unit", real_run_unit)
    shard = next(root.rglob("001-of-001.hdf5"))
    left = [shard.with_name(".001-of-001.hdf5.k4x_9q2z.hdf5.tmp"), root / ".simulation.json.ab12cd34.tmp"]
    for path in left:  # what a SIGKILL during atomic_path writes leaves behind
        path.write_bytes(b"half written")
    (root / ".notes.tmp").write_text("not ours")
    simulate(root, preset="tiny", seed=4, progress=False, **tiny)

    def tree(base: Path) -> dict[str, str]:
        return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(base.rglob("*")) if p.is_file()}

    assert (root / ".notes.tmp").read_text() == "not ours", "files not named like our temporary files are kept"
    (root / ".notes.tmp").unlink()
    assert tree(root) == tree(tmp_path / "fresh")
