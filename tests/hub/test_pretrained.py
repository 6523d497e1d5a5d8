"""save_pretrained / load_pretrained: identical vectors, verified files, clear errors, hub and offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from astrofm.errors import DataFormatError
from astrofm.hub.download import ChecksumError, OfflineError
from astrofm.hub.pretrained import ModelCard, load_pretrained, model_identity, save_pretrained
from tests.helpers.fakehub import FakeHub
from tests.helpers.synthetic import make_samples
from tests.inference.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    from astrofm.model import AstroFM

    torch.manual_seed(1)
    built = AstroFM.from_config(tiny_config())
    built.fit_transforms(make_samples(40, seed=3))
    return built.eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-model"
    card = ModelCard(name="tiny-model", training_data="synthetic", objective="none", metrics={"r2": 0.5})
    return save_pretrained(model, folder, card=card)


def test_save_load_gives_identical_vectors(model, saved):
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "manifest.json",
                                                       "model.safetensors"]
    loaded = load_pretrained(saved)
    assert not loaded.training
    samples = make_samples(9, seed=4)
    before, after = model.embed(samples), loaded.embed(samples)
    for modality in ("image", "spectrum"):
        assert torch.equal(before[modality], after[modality])
    card = (saved / "README.md").read_text()
    assert "tiny-model" in card and "| r2 | 0.5 |" in card and "synthetic" in card
    assert model_identity(saved)[0] == "tiny-model"


def test_saving_the_same_model_gives_the_same_bytes(model, tmp_path):
    """safetensors writes its metadata keys in a random order per save; the folder's checksums must not move."""
    card = ModelCard(name="tiny-model")
    manifests = {(save_pretrained(model, tmp_path / f"save{i}", card=card) / "manifest.json").read_text()
                 for i in range(6)}
    assert len(manifests) == 1
    header = (tmp_path / "save0" / "model.safetensors").read_bytes()[8:400]
    assert b'"__metadata__":{"astrofm_version":' in header  # sorted keys


def test_dtype_and_device(saved):
    loaded = load_pretrained(saved, dtype=torch.bfloat16)
    assert next(loaded.parameters()).dtype == torch.bfloat16
    vectors = loaded.embed(make_samples(2, seed=5))
    assert torch.isfinite(vectors["spectrum"]).all()


def test_tampered_or_newer_files_are_refused(saved, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in saved.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        load_pretrained(copy)
    (copy / "manifest.json").unlink()
    config = json.loads((copy / "config.json").read_text())
    config["format_version"] = 99
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataFormatError, match="newer format"):
        load_pretrained(copy)
    (copy / "config.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_pretrained(copy)


def test_weights_of_another_shape_are_refused_naming_the_first_one(saved, tmp_path):
    """A config edited to another width (manifest removed): every weight name fits, their shapes do not."""
    from astrofm.model import AstroFM
    from astrofm.training.export import load_weights

    copy = tmp_path / "wider"
    copy.mkdir()
    for f in saved.iterdir():
        if f.name != "manifest.json":
            (copy / f.name).write_bytes(f.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    config["model"]["modalities"]["image"]["config"]["dim"] = 24
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataFormatError, match="other shapes") as info:
        load_pretrained(copy)
    assert info.value.file == str(copy / "model.safetensors") and info.value.field.startswith("encoders.image.")
    wider = AstroFM.from_config(config["model"])
    with pytest.raises(DataFormatError, match="other shapes"):
        load_weights(wider, saved)  # init_from a folder of the narrower model


def test_hub_download_then_offline_cache(saved, tmp_path):
    """A hub repo id on a loopback hub; then the same id loads offline from the cache."""
    code = ("import sys, torch; from astrofm.hub.pretrained import load_pretrained; "
            "m = load_pretrained(sys.argv[1]); print(sum(p.float().sum().item() for p in m.parameters()))")
    home = tmp_path / "hf-home"
    with FakeHub() as hub:
        hub.add("astrofm/tiny-model", saved, kind="models")
        env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HOME=str(home), HF_HUB_OFFLINE="0",
                   ASTROFM_HOME=str(tmp_path / "a"), PYTHONPATH=str(ROOT))
        online = subprocess.run([sys.executable, "-c", code, "astrofm/tiny-model"], env=env, capture_output=True,
                                text=True, timeout=120)
    assert online.returncode == 0, online.stderr[-2000:]
    offline_env = dict(env, HF_HUB_OFFLINE="1")
    offline = subprocess.run([sys.executable, "-c", code, "astrofm/tiny-model"], env=offline_env,
                             capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert float(offline.stdout) == pytest.approx(float(online.stdout))
    missing = subprocess.run([sys.executable, "-c", code, "astrofm/not-downloaded"], env=offline_env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0
    assert "offline mode is on" in missing.stderr and "astrofm download astrofm/not-downloaded" in missing.stderr


def test_offline_error_for_missing_url(monkeypatch, tmp_path):
    from astrofm.hub.resolve import resolve_pretrained

    monkeypatch.setenv("ASTROFM_HOME", str(tmp_path))
    monkeypatch.setenv("ASTROFM_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline"):
        resolve_pretrained("https://example.invalid/models/x/")


def test_push_to_hub_uploads_a_loadable_folder(model, tmp_path, monkeypatch):
    """push_to_hub creates the repo and uploads a saved folder through huggingface_hub's HfApi."""
    import shutil

    import huggingface_hub

    calls = {}

    class RecordingApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls["create"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            shutil.copytree(folder_path, tmp_path / "uploaded")
            calls["upload"] = (repo_id, commit_message)
            return type("Info", (), {"commit_url": f"https://hub.invalid/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    url = model.push_to_hub("me/my-model", private=True, token="t0k")
    assert url == "https://hub.invalid/me/my-model/commit/1"
    assert calls["create"] == ("me/my-model", True, True) and calls["token"] == "t0k"
    loaded = load_pretrained(tmp_path / "uploaded")
    samples = make_samples(5, seed=9)
    for name, z in model.embed(samples).items():
        torch.testing.assert_close(loaded.embed(samples)[name], z, equal_nan=True)
    assert model_identity(tmp_path / "uploaded")[0] == "me/my-model"


def test_a_saved_folder_is_readable_by_others_and_replaced_whole(model, tmp_path):
    folder = save_pretrained(model, tmp_path / "m")
    (folder / "stale.txt").write_text("from an earlier save")
    save_pretrained(model, folder)
    assert not (folder / "stale.txt").exists() and not list(tmp_path.glob(".m.*"))
    mask = os.umask(0)
    os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path.name
