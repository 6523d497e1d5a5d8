"""The shipped model: astrofm-sim-small loads offline from the package and embeds the tiny universe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from astrofm.hub.pretrained import card_of, load_pretrained, save_pretrained
from astrofm.hub.registry import get_entry
from astrofm.hub.resolve import resolve_pretrained

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_entry_matches_its_files_and_fits_in_the_package() -> None:
    entry = get_entry("astrofm-sim-small")
    assert entry.source == {"package": "astrofm-sim-small"} and not entry.external
    folder = resolve_pretrained("astrofm-sim-small")  # verifies every SHA-256 of the registry
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    assert size <= 25 and abs(size - entry.size_mb) < 1
    assert set(entry.modalities) == {"image", "spectrum", "lightcurve", "tabular"}
    assert entry.command.startswith("astrofm fit --config configs/astrofm-sim-small.yaml")
    assert (ROOT / "configs" / "astrofm-sim-small.yaml").is_file()


def test_resaving_the_shipped_model_reproduces_its_files_byte_for_byte(tmp_path: Path) -> None:
    """What a benchmark's model-card update does: the same weights and card must keep the registry's checksums."""
    folder = resolve_pretrained("astrofm-sim-small")
    again = save_pretrained(load_pretrained(folder), tmp_path / "astrofm-sim-small", card=card_of(folder))
    for name in ("model.safetensors", "config.json", "README.md", "manifest.json"):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name


def test_a_fresh_offline_process_loads_it_and_embeds_the_tiny_universe(tiny_sim: Path, tmp_path: Path) -> None:
    code = """
import sys
import numpy as np
from astrofm import AstroFM
from astrofm.downstream.store import EmbeddingStore
from astrofm.sim import open_universe
from astrofm.inference import embed_to_store

model = AstroFM.from_pretrained("astrofm-sim-small")
assert not model.training
universe = open_universe(sys.argv[1])
for survey, modality in [("legacysurvey", "image"), ("desi", "spectrum"), ("asassn", "lightcurve")]:
    source = universe.dataset(survey)
    store = embed_to_store(model, source, f"{sys.argv[2]}/{survey}", modalities=[modality], progress=False)
    with EmbeddingStore.open(store) as opened:
        z = np.asarray(opened.vectors(modality))
        assert len(z) == len(source) and np.isfinite(z).all(), survey
        assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-4)
print("ok")
"""
    env = dict(os.environ, ASTROFM_OFFLINE="1", HF_HUB_OFFLINE="1", ASTROFM_HOME=str(tmp_path / "empty-cache"),
               HF_ENDPOINT="http://127.0.0.1:9", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", code, str(tiny_sim), str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
