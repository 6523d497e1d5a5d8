"""The scripts and configs in ``examples/``: they document themselves, parse, and run end to end on tiny data."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = ["train_from_yaml.py", "embed_to_parquet.py", "search_figure.py"]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"astrofm_example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_has_a_usage_docstring_and_help(name: str) -> None:
    module = load(name)
    assert module.__doc__ and "python examples/" + name in module.__doc__
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(EXAMPLES / name), "--help"], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "--out" in result.stdout


def test_multi_gpu_config_sets_ddp_and_parses(tiny_sim: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((EXAMPLES / "multi-gpu.yaml").read_text())
    trainer = config["trainer"]
    assert trainer["devices"] == 4 and trainer["num_nodes"] == 1 and trainer["strategy"].startswith("ddp")
    from astrofm.training import AstroFMDataModule, ModelModule, PretrainModule
    from astrofm.training.cli import AstroFMCLI

    # the same file, on this CPU: every section must parse and build (model, data, trainer)
    cli = AstroFMCLI(ModelModule, AstroFMDataModule, subclass_mode_model=True, run=False,
                     auto_configure_optimizers=False, save_config_callback=None,
                     args=["--config", str(EXAMPLES / "multi-gpu.yaml"), "--trainer.accelerator", "cpu",
                           "--trainer.devices", "1", "--trainer.strategy", "auto", "--trainer.logger", "false",
                           "--trainer.default_root_dir", str(tmp_path), "--data.root", str(tiny_sim)])
    assert isinstance(cli.model, PretrainModule)
    assert set(cli.model.model.modalities) == {"image", "spectrum"}
    assert cli.datamodule.batch_size == 64


def test_slurm_script_runs_the_multi_gpu_config() -> None:
    script = (EXAMPLES / "slurm-multinode.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=4" in script
    assert "srun astrofm fit --config examples/multi-gpu.yaml" in script
    assert '--trainer.num_nodes "${SLURM_JOB_NUM_NODES}"' in script
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(EXAMPLES / "slurm-multinode.sbatch")], check=True)


@pytest.mark.slow
def test_train_embed_and_search_end_to_end(tiny_sim: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "run"
    assert load("train_from_yaml.py").main([
        "--config", str(ROOT / "configs" / "galaxy-clip-tiny.yaml"), "--data-root", str(tiny_sim), "--out", str(out),
        "--max-steps", "4", "--trainer.enable_progress_bar", "false"]) == 0
    assert {p.name for p in (out / "model").iterdir()} >= {"config.json", "model.safetensors"}
    assert (out / "checkpoints" / "last.ckpt").exists() and (out / "logs").is_dir()

    data = [f"legacysurvey={tiny_sim / 'legacysurvey/dr10_south_21'}", f"desi={tiny_sim / 'desi/dr1_main'}"]
    parquet = tmp_path / "galaxies.parquet"
    assert load("embed_to_parquet.py").main(["--model", str(out / "model"), "--data", *data,
                                             "--out", str(parquet), "--device", "cpu"]) == 0
    table = pq.read_table(parquet)
    assert table.column_names == ["object_id", "image", "spectrum"]
    assert table.num_rows == 1000  # every tiny galaxy; about 60% have a spectrum
    assert 400 < table.num_rows - table.column("spectrum").null_count < 800

    figure = tmp_path / "search.png"
    assert load("search_figure.py").main(["--store", str(parquet.with_suffix(".store")), "--data", *data,
                                          "--modality", "image", "--target-modality", "spectrum",
                                          "--random", "2", "--k", "3", "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
