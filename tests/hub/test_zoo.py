"""The shipped models load offline from the package, keep their registry checksums and embed the tiny universe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from astrofm.hub.pretrained import card_of, load_pretrained, save_pretrained
from astrofm.hub.registry import get_entry, list_pretrained
from astrofm.hub.resolve import resolve_pretrained
from astrofm.training import AstroFMDataModule

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(entry.name for entry in list_pretrained() if "package" in entry.source)
#: Each shipped model's modalities and the config that its registry command trains it with.
EXPECTED = {
    "astrofm-sim-small": ({"image", "spectrum", "lightcurve", "tabular"}, "configs/astrofm-sim-small.yaml"),
    "astrofm-sim-galaxies": ({"image", "spectrum"}, "configs/science/galaxy-clip-degrade.yaml"),
}
#: Tiny-universe datasets each modality is embedded from in the offline test.
SURVEYS = {"image": "legacysurvey", "spectrum": "desi", "lightcurve": "asassn", "tabular": "gaia"}


def test_every_shipped_model_is_expected() -> None:
    assert sorted(EXPECTED) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_entry_matches_its_files_and_fits_in_the_package(name: str) -> None:
    entry = get_entry(name)
    assert entry.source == {"package": name} and not entry.external
    folder = resolve_pretrained(name)  # verifies every SHA-256 of the registry
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    assert size <= 25 and abs(size - entry.size_mb) < 1
    modalities, config = EXPECTED[name]
    assert set(entry.modalities) == modalities
    assert Path(config).stem in entry.command and (ROOT / config).is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_resaving_a_shipped_model_reproduces_its_files_byte_for_byte(name: str, tmp_path: Path) -> None:
    """What a benchmark's model-card update does: the same weights and card must keep the registry's checksums."""
    folder = resolve_pretrained(name)
    again = save_pretrained(load_pretrained(folder), tmp_path / name, card=card_of(folder))
    for file in ("model.safetensors", "config.json", "README.md", "manifest.json"):
        assert (again / file).read_bytes() == (folder / file).read_bytes(), file


@pytest.mark.parametrize("name", SHIPPED)
def test_a_fresh_offline_process_loads_it_and_embeds_the_tiny_universe(name: str, tiny_sim: Path,
                                                                        tmp_path: Path) -> None:
    surveys = [(SURVEYS[m], m) for m in sorted(EXPECTED[name][0]) if m != "tabular"]
    code = """
import sys
import numpy as np
from astrofm import AstroFM
from astrofm.downstream.store import EmbeddingStore
from astrofm.sim import open_universe
from astrofm.inference import embed_to_store

model = AstroFM.from_pretrained(sys.argv[3])
assert not model.training
universe = open_universe(sys.argv[1])
for pair in sys.argv[4:]:
    survey, modality = pair.split(":")
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
    pairs = [f"{survey}:{modality}" for survey, modality in surveys]
    run = subprocess.run([sys.executable, "-c", code, str(tiny_sim), str(tmp_path), name, *pairs], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


def test_the_galaxy_model_finds_each_tiny_galaxys_spectrum_from_its_image(tiny_sim: Path) -> None:
    """Galaxies it never saw (another simulated universe): image -> spectrum retrieval far above chance."""
    model = load_pretrained(resolve_pretrained("astrofm-sim-galaxies"))
    data = AstroFMDataModule(str(tiny_sim), [{"datasets": {
        "legacysurvey": {"path": "legacysurvey/dr10_south_21", "modalities": ["image"]},
        "desi": {"path": "desi/dr1_main", "modalities": ["spectrum"]}}, "how": "inner"}],
        split="splits.json", batch_size=128)
    images, spectra = [], []
    with torch.no_grad():
        for batch in data.loader("train", transform=model.transform):
            embedded = model(batch)
            images.append(embedded["image"].scatter().numpy())
            spectra.append(embedded["spectrum"].scatter().numpy())
    image, spectrum = np.concatenate(images), np.concatenate(spectra)
    ranks = (image @ spectrum.T > np.sum(image * spectrum, axis=1, keepdims=True)).sum(axis=1)
    chance = 10 / len(image)
    recall_at_10 = float(np.mean(ranks < 10))
    assert len(image) >= 300 and recall_at_10 > 10 * chance, (len(image), recall_at_10)
