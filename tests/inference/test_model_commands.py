"""``astrofm models``, ``export``, ``download`` and ``embed`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from astrofm.cli import main
from astrofm.downstream.store import EmbeddingStore
from astrofm.hub.pretrained import load_pretrained
from astrofm.training.module import CHECKPOINT_KEY


def test_models_lists_the_registry_as_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "astropt-21m" in text and "external" in text and "sha256" in text
    assert main(["models", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["astropt-21m"]["external"] and entries["astropt-21m"]["format"] == "astropt"
    for entry in entries.values():
        assert all(len(digest) == 64 for digest in entry["files"].values())


def test_export_then_download_then_embed(tiny_model, galaxy_folder, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    state = {f"model.{k}": v for k, v in tiny_model.state_dict().items()}
    torch.save({"state_dict": state, CHECKPOINT_KEY: {"config": tiny_model.config.to_dict()}}, tmp_path / "last.ckpt")
    (tmp_path / "metrics.json").write_text(json.dumps({"s1_r2": 0.5}))
    assert main(["export", str(tmp_path / "last.ckpt"), "--out", str(tmp_path / "model"), "--name", "tiny",
                 "--metrics", str(tmp_path / "metrics.json")]) == 0
    card = (tmp_path / "model" / "README.md").read_text()
    assert "# tiny" in card and "s1_r2" in card
    assert main(["download", str(tmp_path / "model")]) == 0
    assert "verified" in capsys.readouterr().out

    root, ids = galaxy_folder
    store = tmp_path / "store"
    capsys.readouterr()
    assert main(["embed", "--model", str(tmp_path / "model"), "--data", f"ls={root / 'ls'}",
                 f"desi={root / 'desi'}", "--out", str(store), "--batch-size", "97"]) == 0
    assert f"vectors in {store}: image {len(ids)}, spectrum {len(ids) - len(ids[::3])}" in capsys.readouterr().out
    assert main(["embed", "--model", str(tmp_path / "model"), "--data", str(root / "ls"), "--out",
                 str(tmp_path / "other"), "--modalities", "image", "sed"]) != 0
    assert "['sed']: not among the model's modalities" in capsys.readouterr().err
    from astrofm.data.crossmatch import CrossMatchDataset
    from astrofm.data.dataset import MMUDataset
    from astrofm.inference import embed_to_store

    source = CrossMatchDataset.open({"ls": MMUDataset(root / "ls", name="ls"),
                                     "desi": MMUDataset(root / "desi", name="desi")}, how="outer")
    reference = embed_to_store(load_pretrained(tmp_path / "model"), source, tmp_path / "api", model_name="tiny",
                               batch_size=13)
    with EmbeddingStore.open(store) as cli, EmbeddingStore.open(reference) as api:
        assert sorted(cli.object_ids("image")) == sorted(ids)
        assert cli.count("spectrum") == len(ids) - len(ids[::3])
        for modality in ("image", "spectrum"):
            order = cli.object_ids(modality)
            # same vectors up to float32 rounding (BLAS sums in a batch-size dependent order)
            np.testing.assert_allclose(np.asarray(cli.vectors(modality)), api.get(modality, order), atol=1e-6)


def test_bad_inputs_exit_with_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "m")]) != 0
    assert "junk.ckpt" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert main(["download", "no-such-model-name"]) != 0
    assert "no-such-model-name" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_embed_precision_auto_is_bf16_only_where_native_and_can_be_forced(
        tiny_model, galaxy_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """--precision auto: bf16 autocast on a CPU with AVX512-BF16/AMX, float32 on one without; 32 and bf16 force."""
    from tests.training.test_precision import cpu_with_bf16

    cpu_with_bf16(monkeypatch, native)
    tiny_model.save_pretrained(tmp_path / "model")
    root, _ = galaxy_folder
    vectors = {}
    for precision in ("auto", "32", "bf16"):
        store = tmp_path / f"store-{precision}"
        assert main(["embed", "--model", str(tmp_path / "model"), "--data", str(root / "ls"), "--out", str(store),
                     "--precision", precision]) == 0
        with EmbeddingStore.open(store) as opened:
            order = np.argsort(opened.object_ids("image"))
            vectors[precision] = np.asarray(opened.vectors("image"))[order]
    assert vectors["32"].dtype == np.float32 and vectors["bf16"].dtype == np.float32
    assert not np.array_equal(vectors["bf16"], vectors["32"])  # bf16 rounding is visible ...
    np.testing.assert_allclose(vectors["bf16"], vectors["32"], atol=0.05)  # ... and small
    np.testing.assert_array_equal(vectors["auto"], vectors["bf16" if native else "32"])
