"""Turn a pretrained-model source into a verified local folder.

``resolve_pretrained(source)`` accepts a local folder, a registry name, an
https URL to a folder (with ``manifest.json`` listing files and SHA-256) or to
an archive (``.tar.gz``/``.tgz``/``.zip``, with ``#sha256=<hex>`` appended to
verify it), or a Hugging Face hub repo id
(``owner/name``, optional revision). Remote files land in astrofm's cache
and are verified before use; the cache is reused offline.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
import zipfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from astrofm.errors import ConfigError
from astrofm.hub.cache import is_offline, models_dir, sha256_of, url_dir
from astrofm.hub.download import ChecksumError, DownloadError, OfflineError, download
from astrofm.hub.registry import RegistryEntry, find_entry
from astrofm.utils.atomic import atomic_dir

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
MANIFEST = "manifest.json"


def verify_files(folder: Path, files: Mapping[str, str]) -> None:
    """Check each file's SHA-256; raise ``ChecksumError`` naming the first mismatch."""
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise DownloadError(f"{path}: missing (expected by the registry/manifest)")
        actual = sha256_of(path)
        if actual != expected:
            raise ChecksumError(f"{path}: SHA-256 mismatch, expected {expected}, got {actual}")


def _fetch_folder(base_url: str, files: Mapping[str, str] | None, into: Path) -> Path:
    """Download every file of a folder URL (listed in ``files`` or in its manifest) into ``into``."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    if files is None:
        manifest = download(base + MANIFEST, into / MANIFEST, progress=False)
        files = json.loads(manifest.read_text())["files"]
    for name, digest in files.items():
        download(base + name, into / name, sha256=digest)
    return into


def _fetch_archive(url: str, sha256: str | None, into: Path) -> Path:
    """Download an archive, verify it, and unpack it (atomically) into ``into``."""
    archive = download(url, into.parent / (into.name + "-" + url.rsplit("/", 1)[-1]), sha256=sha256)
    archive_digest = sha256 or sha256_of(archive)
    marker = into / ".complete"
    if marker.exists() and marker.read_text() == archive_digest:
        return into
    with atomic_dir(into) as tmp:
        if url.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                _check_members([m.filename for m in zf.infolist()], url)
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                _check_members([m.name for m in tf.getmembers()], url)
                if any(not (m.isfile() or m.isdir()) for m in tf.getmembers()):
                    raise DownloadError(f"{url}: archive holds links or devices; refused")
                tf.extractall(tmp, filter="data")
        entries = list(tmp.iterdir())
        if len(entries) == 1 and entries[0].is_dir():  # an archive of one folder: its content is the model
            for item in list(entries[0].iterdir()):
                os.replace(item, tmp / item.name)
            entries[0].rmdir()
        (tmp / ".complete").write_text(archive_digest)
    return into


def _check_members(names: list[str], url: str) -> None:
    for name in names:
        if name.startswith("/") or ".." in Path(name).parts:
            raise DownloadError(f"{url}: archive member {name!r} escapes the target folder; refused")


def _from_hub(repo_id: str, revision: str | None, patterns: list[str] | None = None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=is_offline(),
                                      allow_patterns=patterns or ["*.json", "*.safetensors", "*.md"]))
    except LocalEntryNotFoundError as error:
        if is_offline():
            raise OfflineError(f"hub model {repo_id}@{revision or 'main'} is not in the cache and offline mode is "
                               f"on; download it first with `astrofm download {repo_id}` while online") from error
        raise DownloadError(f"hub model {repo_id}@{revision or 'main'}: cannot reach the hub ({error})") from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise DownloadError(f"hub model {repo_id}@{revision or 'main'}: not found (HTTP 404)") from error


def _from_entry(entry: RegistryEntry) -> Path:
    source = entry.source
    if "package" in source:
        folder = Path(str(resources.files("astrofm.hub").joinpath("weights", source["package"])))
    elif "hub" in source:
        # an astrofm folder on the hub, or only the listed files of a peer's repo (e.g. one AstroPT ckpt.pt)
        patterns = list(entry.files) if entry.format != "astrofm" else None
        folder = _from_hub(source["hub"], source.get("revision"), patterns)
    elif "url" in source:
        url = source["url"]
        target = models_dir() / entry.name
        if url.endswith(ARCHIVE_SUFFIXES):
            folder = _fetch_archive(url, source.get("sha256"), target)
        else:
            folder = _fetch_folder(url, entry.files, target)
    else:
        raise ConfigError(f"registry entry {entry.name!r} has no usable source: {source}")
    verify_files(folder, entry.files)
    return folder


def resolve_pretrained(source: str | Path, *, revision: str | None = None) -> Path:
    """A local folder holding the model files of ``source`` (see the module docstring)."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        manifest = path / MANIFEST
        if manifest.exists():
            verify_files(path, json.loads(manifest.read_text())["files"])
        return path
    if text.startswith(("https://", "http://")):
        url, _, digest = text.partition("#sha256=")
        target = url_dir(url)
        if url.endswith(ARCHIVE_SUFFIXES):
            return _fetch_archive(url, digest or None, target)
        folder = _fetch_folder(url, None, target)
        verify_files(folder, json.loads((folder / MANIFEST).read_text())["files"])
        return folder
    entry = find_entry(text)
    if entry is not None:
        return _from_entry(entry)
    if text.count("/") == 1 and not path.exists():
        repo, _, rev = text.partition("@")
        return _from_hub(repo, revision or rev or None)
    raise ConfigError(f"cannot find a pretrained model at {text!r}: not a folder, URL, hub id or registry name")
