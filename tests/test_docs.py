"""The documentation builds with ``mkdocs build --strict``, lists every page, and its code runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "NO_MKDOCS_2_WARNING": "1"}


def _nav_pages(entries: list) -> list[str]:
    pages = []
    for entry in entries:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)  # no !tags in this file
    pages = set(_nav_pages(config["nav"]))
    files = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert files == pages


def test_docs_build_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(site)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # generated pages carry their content: the CLI help, the benchmark table, the API reference
    assert "astrofm fit" in (site / "reference" / "cli" / "index.html").read_text()
    assert "<table>" in (site / "benchmarks" / "index.html").read_text()
    for page, name in [("model", "AstroFM"), ("training", "PretrainModule"), ("downstream", "EmbeddingStore"),
                       ("sim", "simulate"), ("hub", "load_pretrained"), ("ar", "ARModel"),
                       ("inference", "embed_to_store")]:
        html = (site / "reference" / page / "index.html").read_text()
        assert 'id="astrofm.' in html and name in html, page


def test_notebooks_and_examples_are_listed() -> None:
    page = (DOCS / "notebooks.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "examples").iterdir()):
        assert f"`{path.name}`" in page, f"{path.name} is not described in docs/notebooks.md"


def test_add_modality_howto_runs(tmp_path: Path) -> None:
    """The how-to's Python blocks, run in order in a fresh interpreter (they register a new modality)."""
    text = (DOCS / "howto" / "add-modality.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "my_sed" not in b]
    assert len(blocks) >= 5
    script = tmp_path / "howto.py"
    script.write_text("\n\n".join(blocks) + '\nassert vectors["sed"].shape == (8, 32)\n')
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
