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
from pathlib import Path, PureWindowsPath

from astrofm.errors import ConfigError
from astrofm.hub.cache import is_offline, locked, models_dir, sha256_of, url_dir
from astrofm.hub.download import ChecksumError, DownloadError, OfflineError, download
from astrofm.hub.registry import RegistryEntry, find_entry
from astrofm.utils.atomic import atomic_dir

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
MANIFEST = "manifest.json"


def verify_files(folder: Path, files: Mapping[str, str], source: str | Path | None = None) -> None:
    """Check each file's SHA-256; raise ``ChecksumError`` naming the first mismatch (and ``source``, if given)."""
    where = f"{source}: " if source is not None else ""
    for name, expected in files.items():
        path = _inside(folder, name, source or folder)
        if not path.is_file():
            raise DownloadError(f"{where}{path}: missing (expected by the registry/manifest)")
        actual = sha256_of(path)
        if actual != expected:
            raise ChecksumError(f"{where}{path}: SHA-256 mismatch, expected {expected}, got {actual}")


def _inside(folder: Path, name: str, source: str | Path) -> Path:
    """``folder / name``; a name that is absolute, holds ``..`` or lies in a folder outside ``folder`` (through a
    symlinked folder) raises ``DownloadError``. The file itself may be a symlink (the hub cache's snapshots are)."""
    pure = PureWindowsPath(name)  # parses both / and \ separators and drive letters
    path = folder / name
    if pure.anchor or ".." in pure.parts or (
            path != folder and not path.parent.resolve().is_relative_to(folder.resolve())):
        raise DownloadError(f"{source}: file name {name!r} escapes the target folder {folder}; refused")
    return path


def _manifest_files(folder: Path, source: str | Path) -> dict[str, str]:
    """The ``files`` of ``folder``'s manifest.json (empty without one); a malformed one raises ``DownloadError``."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        return {}
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise DownloadError(f"{source}: {manifest}: not a valid manifest ({error})") from error
    if not isinstance(files, dict):
        raise DownloadError(f"{source}: {manifest}: field 'files' is not a mapping of file name -> SHA-256")
    return files


def _fetch_folder(base_url: str, files: Mapping[str, str] | None, into: Path) -> Path:
    """Download every file of a folder URL (listed in ``files`` or in its manifest) into ``into``."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    if files is None:
        download(base + MANIFEST, into / MANIFEST, progress=False)
        files = _manifest_files(into, base_url)
    targets = {name: _inside(into, name, base_url) for name in files}  # refuse every bad name before fetching
    for name, digest in files.items():
        download(base + name, targets[name], sha256=digest)
    return into


def _fetch_archive(url: str, sha256: str | None, into: Path, files: Mapping[str, str] | None = None) -> Path:
    """Download an archive, verify it, and unpack it (atomically) into ``into``.

    The unpacked files are checked against ``files`` (default: the archive's manifest.json) after unpacking
    and on every later call; a cached copy that fails is unpacked again.
    """
    archive = download(url, into.parent / (into.name + "-" + url.rsplit("/", 1)[-1]), sha256=sha256)
    archive_digest = sha256 or sha256_of(archive)
    marker = into / ".complete"
    with locked(into):
        if marker.exists() and marker.read_text() == archive_digest:
            try:
                verify_files(into, files or _manifest_files(into, url), url)
                return into
            except DownloadError as error:
                log.warning("%s; unpacking %s again", error, archive)
        with atomic_dir(into) as tmp:
            if url.endswith(".zip"):
                with zipfile.ZipFile(archive) as zf:
                    _check_members([m.filename for m in zf.infolist()], tmp, url)
                    zf.extractall(tmp)
            else:
                with tarfile.open(archive) as tf:
                    _check_members([m.name for m in tf.getmembers()], tmp, url)
                    if any(not (m.isfile() or m.isdir()) for m in tf.getmembers()):
                        raise DownloadError(f"{url}: archive holds links or devices; refused")
                    tf.extractall(tmp, filter="data")
            entries = list(tmp.iterdir())
            if len(entries) == 1 and entries[0].is_dir():  # an archive of one folder: its content is the model
                for item in list(entries[0].iterdir()):
                    os.replace(item, tmp / item.name)
                entries[0].rmdir()
            verify_files(tmp, files or _manifest_files(tmp, url), url)
            (tmp / ".complete").write_text(archive_digest)
    return into


def _check_members(names: list[str], folder: Path, url: str) -> None:
    for name in names:
        _inside(folder, name, f"{url}: archive member")


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
            folder = _fetch_archive(url, source.get("sha256"), target, entry.files)
        else:
            folder = _fetch_folder(url, entry.files, target)
    else:
        raise ConfigError(f"registry entry {entry.name!r} has no usable source: {source}")
    verify_files(folder, entry.files, entry.name)
    return folder


def resolve_pretrained(source: str | Path, *, revision: str | None = None) -> Path:
    """A local folder holding the model files of ``source`` (see the module docstring)."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        verify_files(path, _manifest_files(path, path))
        return path
    if text.startswith(("https://", "http://")):
        url, _, digest = text.partition("#sha256=")
        target = url_dir(url)
        if url.endswith(ARCHIVE_SUFFIXES):
            return _fetch_archive(url, digest or None, target)
        folder = _fetch_folder(url, None, target)
        verify_files(folder, _manifest_files(folder, url), url)
        return folder
    entry = find_entry(text)
    if entry is not None:
        return _from_entry(entry)
    if text.count("/") == 1 and not path.exists():
        repo, _, rev = text.partition("@")
        return _from_hub(repo, revision or rev or None)
    raise ConfigError(f"cannot find a pretrained model at {text!r}: not a folder, URL, hub id or registry name")
