"""AstroPT checkpoints convert to ARModels with the same predictions and embeddings; no code runs on load."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from astrofm.ar import ARModel
from astrofm.ar.tokenizers import astropt_spiral_order
from astrofm.data.batch import collate
from astrofm.errors import DataFormatError
from astrofm.hub.astropt import load_astropt, read_astropt_checkpoint
from astrofm.inference import samples_from_arrays

astropt_model = pytest.importorskip("astropt.model")
astropt_data = pytest.importorskip("astropt.local_datasets")

N, CHANNELS, SIZE, PATCH, SPECTRUM_TOKENS = 4, 3, 16, 4, 6


def _astropt(*, bias: bool, tokeniser: str, spectra_embed_pos: bool, seed: int = 0,
             spectra_first: bool = False) -> tuple[Any, dict, Any]:
    """A random AstroPT GPT (images + spectra), every weight perturbed so that none is trivially 0 or 1."""
    torch.manual_seed(seed)
    modalities = [
        astropt_model.ModalityConfig(name="images", input_size=PATCH * PATCH * CHANNELS, pos_input_size=1,
                                     patch_size=PATCH, embed_pos=True),
        astropt_model.ModalityConfig(name="spectra", input_size=10, pos_input_size=1, patch_size=10,
                                     embed_pos=spectra_embed_pos),
    ]
    if spectra_first:  # listed out of AstroPT's (sorted) sequence order
        modalities.reverse()
    registry = astropt_model.ModalityRegistry(modalities)
    args = {"n_layer": 3, "n_head": 2, "n_embd": 32, "block_size": 64, "bias": bias, "n_chan": CHANNELS,
            "dropout": 0.0, "tokeniser": tokeniser, "modalities": modalities}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = astropt_model.GPT(astropt_model.GPTConfig(**args), registry)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval(), args, registry


def _save(path: Path, model: Any, args: dict, registry: Any, *, prefix: str = "") -> Path:
    """A checkpoint laid out as AstroPT's training script writes it."""
    optimizer = torch.optim.AdamW(model.parameters())
    torch.save({"model": {prefix + k: v for k, v in model.state_dict().items()}, "optimizer": optimizer.state_dict(),
                "model_args": args, "iter_num": 7, "best_val_loss": torch.tensor(0.25),
                "config": {"learning_rate": 6e-4, "spiral": False, "batch_size": 8},
                "modality_registry": registry}, path)
    return path


def _normalise(patches: torch.Tensor) -> torch.Tensor:
    """AstroPT's per-patch ``normalise`` transform (its scripts/train.py)."""
    std, mean = torch.std_mean(patches, dim=1, keepdim=True)
    return (patches - mean) / (std + 1e-8)


def _inputs(registry: Any, seed: int = 1, *, spiral: bool = False, normalise: bool = False,
            scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Raw images, spectrum tokens, and AstroPT's inputs for them (its own dataset code makes the image tokens)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(N, CHANNELS, SIZE, SIZE, generator=generator) * scale + scale
    spectra = torch.randn(N, SPECTRUM_TOKENS, 10, generator=generator)
    dataset = astropt_data.GalaxyImageDataset(paths={"images": None}, spiral=spiral, stochastic=False,
                                              modality_registry=registry,
                                              transform={"images": _normalise} if normalise else {})
    tokens = torch.stack([dataset.process_galaxy(image.clone()) for image in images])
    positions = torch.arange(SPECTRUM_TOKENS, dtype=torch.float32)[None, :, None].expand(N, -1, -1) / SPECTRUM_TOKENS
    inputs = {"images": tokens, "images_positions": torch.arange(tokens.shape[1]).expand(N, -1),
              "spectra": spectra, "spectra_positions": positions}
    return images, spectra, inputs


@pytest.mark.parametrize(("bias", "tokeniser", "embed_pos"), [(True, "aim", True), (False, "affine", False)])
def test_converted_model_gives_astropts_predictions_and_embeddings(tmp_path: Path, bias: bool, tokeniser: str,
                                                                   embed_pos: bool) -> None:
    theirs, args, registry = _astropt(bias=bias, tokeniser=tokeniser, spectra_embed_pos=embed_pos)
    path = _save(tmp_path / "ckpt.pt", theirs, args, registry, prefix="_orig_mod." if bias else "")
    ours = load_astropt(path, image_size=SIZE, standardize=False)
    assert isinstance(ours, ARModel) and ours.modalities == ("image", "spectrum")
    images, spectra, inputs = _inputs(registry)
    if embed_pos:
        inputs["spectra_positions"] = torch.arange(SPECTRUM_TOKENS).expand(N, -1)
    spectrum = {"tokens": spectra} if embed_pos else {"tokens": spectra, "positions": inputs["spectra_positions"]}
    batch = collate(samples_from_arrays({"image": {"flux": images}, "spectrum": spectrum}))
    with torch.no_grad():
        expected, _ = theirs(inputs)
        middle = theirs.generate_embeddings(inputs)
        final = theirs.get_embeddings(inputs, draw_from_centre=False)
        predicted = ours(batch)
    assert expected["images"].abs().mean() > 0.05  # outputs are not trivially small
    torch.testing.assert_close(predicted["image"].predicted[:, 1:], expected["images"], atol=1e-5, rtol=0)
    torch.testing.assert_close(predicted["spectrum"].predicted, expected["spectra"], atol=1e-5, rtol=0)
    z = ours.embed(batch)
    torch.testing.assert_close(z["image"], middle["images"], atol=1e-5, rtol=0)
    torch.testing.assert_close(z["spectrum"], middle["spectra"], atol=1e-5, rtol=0)
    ours.config.embed_layer = "final"
    z = ours.embed(batch)
    torch.testing.assert_close(z["image"], final["images"].mean(dim=1), atol=1e-5, rtol=0)
    # the token route (no image_size): AstroPT's own image tokens in, the same outputs
    tokens_model = load_astropt(path)
    token_batch = collate(samples_from_arrays({"image": {"tokens": inputs["images"]}, "spectrum": spectrum}))
    with torch.no_grad():
        torch.testing.assert_close(tokens_model(token_batch)["image"].predicted[:, 1:], expected["images"], atol=1e-5,
                                   rtol=0)


def test_modalities_run_in_astropts_sorted_order_whatever_the_checkpoint_lists(tmp_path: Path) -> None:
    theirs, args, registry = _astropt(bias=True, tokeniser="aim", spectra_embed_pos=True, spectra_first=True)
    assert [m.name for m in args["modalities"]] == ["spectra", "images"]
    ours = load_astropt(_save(tmp_path / "ckpt.pt", theirs, args, registry))
    assert ours.modalities == ("image", "spectrum")
    _, spectra, inputs = _inputs(registry)
    inputs["spectra_positions"] = torch.arange(SPECTRUM_TOKENS).expand(N, -1)
    batch = collate(samples_from_arrays({"image": {"tokens": inputs["images"]}, "spectrum": {"tokens": spectra}}))
    with torch.no_grad():
        expected, _ = theirs(inputs)
        middle = theirs.generate_embeddings(inputs)
        predicted, z = ours(batch), ours.embed(batch)
    torch.testing.assert_close(predicted["image"].predicted[:, 1:], expected["images"], atol=2e-6, rtol=0)
    torch.testing.assert_close(predicted["spectrum"].predicted, expected["spectra"], atol=2e-6, rtol=0)
    torch.testing.assert_close(z["spectrum"], middle["spectra"], atol=2e-6, rtol=0)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
def test_astropt_spiral_order_is_the_one_astropts_dataset_uses(size: int) -> None:
    dataset = astropt_data.GalaxyImageDataset(paths={"images": None}, spiral=True, stochastic=False)
    labelled = torch.arange(size * size, dtype=torch.float32)[:, None]  # patch i holds the value i
    assert dataset.spiralise(labelled)[:, 0].long().tolist() == astropt_spiral_order(size)


@pytest.mark.parametrize(("spiral", "normalise"), [(True, True), (True, False), (False, True)])
def test_converted_image_pipeline_is_astropts_order_and_normalisation(tmp_path: Path, spiral: bool,
                                                                      normalise: bool) -> None:
    """Raw images through the converter equal AstroPT's dataset (spiral, train.py's normalise) and model."""
    theirs, args, registry = _astropt(bias=False, tokeniser="aim", spectra_embed_pos=True)
    path = _save(tmp_path / "ckpt.pt", theirs, args, registry)
    ours = load_astropt(path, image_size=SIZE, image_order="spiral" if spiral else "raster", standardize=normalise)
    images, spectra, inputs = _inputs(registry, spiral=spiral, normalise=normalise, scale=50.0 if normalise else 1.0)
    inputs["spectra_positions"] = torch.arange(SPECTRUM_TOKENS).expand(N, -1)
    batch = collate(samples_from_arrays({"image": {"flux": images}, "spectrum": {"tokens": spectra}}))
    with torch.no_grad():
        expected, _ = theirs(inputs)
        predicted = ours(batch)
    torch.testing.assert_close(predicted["image"].predicted[:, 1:], expected["images"], atol=1e-5, rtol=0)
    torch.testing.assert_close(predicted["spectrum"].predicted, expected["spectra"], atol=1e-5, rtol=0)


class _Exploit:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, ("touch pwned-by-checkpoint",)


def test_a_checkpoint_with_foreign_objects_is_refused_without_running_them(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    theirs, args, registry = _astropt(bias=False, tokeniser="aim", spectra_embed_pos=True)
    torch.save({"model": theirs.state_dict(), "model_args": args, "modality_registry": registry,
                "hook": _Exploit()}, tmp_path / "bad.pt")
    with pytest.raises(DataFormatError, match="refused") as error:
        read_astropt_checkpoint(tmp_path / "bad.pt")
    assert "system" in str(error.value)
    assert not (tmp_path / "pwned-by-checkpoint").exists()
    good = read_astropt_checkpoint(_save(tmp_path / "good.pt", theirs, args, registry))
    assert [m["name"] for m in good.modalities] == ["images", "spectra"] and good.model_args["n_layer"] == 3


def test_the_registry_entry_of_a_peer_checkpoint_downloads_and_converts(tmp_path: Path) -> None:
    """An external registry entry (format "astropt", one file of a hub repo) on a loopback hub, then offline."""
    import json
    import subprocess
    import sys

    from astrofm.hub.cache import sha256_of
    from tests.helpers.fakehub import FakeHub

    theirs, args, registry = _astropt(bias=True, tokeniser="aim", spectra_embed_pos=True)
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    checkpoint = _save(repo / "models" / "ckpt.pt", theirs, args, registry)
    (repo / "models" / "other.pt").write_bytes(b"not listed in the registry: never downloaded")
    entry = {"name": "peer-gpt", "description": "test", "modalities": ["images"], "source": {"hub": "peer/gpt"},
             "files": {"models/ckpt.pt": sha256_of(checkpoint)}, "format": "astropt", "external": True}
    code = ("import json, sys; import astrofm.hub.registry as r; from astrofm.hub.registry import RegistryEntry; "
            "r._load = lambda: {'peer-gpt': RegistryEntry(**json.loads(sys.argv[1]))}; "
            "from astrofm.ar import ARModel; m = ARModel.from_pretrained('peer-gpt'); "
            "print(m.modalities, sum(p.double().sum().item() for p in m.parameters()))")
    expected = load_astropt(checkpoint)
    total = sum(p.double().sum().item() for p in expected.parameters())
    with FakeHub() as hub:
        hub.add("peer/gpt", repo, kind="models")
        env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0",
                   ASTROFM_HOME=str(tmp_path / "astrofm"), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        online = subprocess.run([sys.executable, "-c", code, json.dumps(entry)], env=env, capture_output=True,
                                text=True, timeout=120)
    assert online.returncode == 0, online.stderr[-2000:]
    offline = subprocess.run([sys.executable, "-c", code, json.dumps(entry)], env=dict(env, HF_HUB_OFFLINE="1"),
                             capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0, offline.stderr[-2000:]
    for run in (online, offline):
        names, value = run.stdout.rsplit(" ", 1)
        assert names == str(expected.modalities) and float(value) == pytest.approx(total, rel=1e-9)
    assert not list((tmp_path / "hf").rglob("other.pt"))
