"""The astrofm command: --version, info, inspect (good and bad data)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from astrofm import __version__
from astrofm.cli import main
from astrofm.data.dataset import write_dataset
from tests.helpers.synthetic import make_samples


def test_version_from_console_script():
    result = subprocess.run([sys.executable, "-m", "astrofm", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip() == f"astrofm {__version__}"


def test_info_reports_versions_devices_and_roots(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ASTROFM_HOME", str(tmp_path / "cache"))
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["astrofm"] == __version__
    assert info["packages"]["torch"]
    assert "cpu" in info["devices"]
    assert info["cache_root"] == str(tmp_path / "cache")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect") / "desi" / "dr1"
    write_dataset(root, make_samples(40, modalities=("spectrum", "lightcurve")))
    return root


def test_inspect_summarizes(dataset_dir, capsys):
    assert main(["inspect", str(dataset_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_objects"] == 40
    assert set(summary["modalities"]) == {"spectrum", "lightcurve"}
    assert summary["fields"]["spectrum_flux"] == {"shape": ["N", 64], "dtype": "f4",
                                                  "unit": "1e-17 erg/s/cm^2/Å"}
    assert summary["healpix_pixels"]
    assert main(["inspect", str(dataset_dir)]) == 0
    text = capsys.readouterr().out
    assert "valid mmu-hdf5, 40 objects" in text


def test_inspect_bad_data_exits_nonzero_with_clear_message(tmp_path, capsys):
    bad = tmp_path / "healpix=1" / "001-of-001.hdf5"
    bad.parent.mkdir()
    bad.write_text("not hdf5")
    assert main(["inspect", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "not a readable HDF5 file" in err
    result = subprocess.run([sys.executable, "-m", "astrofm", "inspect", str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [('{"a": null}', "field 'a': metric is not a number"), ("[1]", "metrics are not a JSON object"),
     ("{", "cannot read the metrics")],
)
def test_export_reports_bad_metrics_files(tmp_path, capsys, text, message):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(text)
    assert main(["export", str(tmp_path / "last.ckpt"), "--out", str(tmp_path / "model"),
                 "--metrics", str(metrics)]) == 1
    assert f"{metrics}: {message}" in capsys.readouterr().err
