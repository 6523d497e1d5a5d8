"""Atomic, resumable, checksummed HTTP(S) downloads.

A download goes to ``<dest>.part`` next to its destination, under a lock
(``astrofm.hub.cache.locked``) so that processes fetching the same file take
turns. If interrupted, the next call resumes it with an HTTP range request
when the file has a known SHA-256 (otherwise it starts again). When complete,
the file is verified against its SHA-256; a mismatch deletes it and raises.
Only then is it renamed into place, so the destination is either absent or
complete and verified.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from astrofm._version import __version__
from astrofm.errors import AstrofmError
from astrofm.hub.cache import is_offline, locked, sha256_of

log = logging.getLogger(__name__)
_CHUNK = 1 << 16


class DownloadError(AstrofmError, OSError):
    """A download failed: not found, timed out, refused, or the wrong content."""


class ChecksumError(DownloadError):
    """A downloaded file's SHA-256 differs from the expected one (the file was deleted)."""


class OfflineError(DownloadError):
    """A file is needed from the network while offline mode is on."""


def download(url: str, dest: str | Path, *, sha256: str | None = None, timeout: float = 30.0,
             progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` unless a verified copy is already there; return ``dest``.

    ``sha256`` (hex) is checked when given; a cached file that fails the check
    is downloaded again. Processes fetching the same ``dest`` take turns (the
    later ones find it done). Raises ``OfflineError`` in offline mode when the
    file is not cached, ``ChecksumError`` on a mismatch, and ``DownloadError``
    for HTTP errors (404 ...), timeouts and file errors, each naming the URL.
    """
    dest = Path(dest)
    if _verified(dest, sha256):
        return dest
    if is_offline():
        raise OfflineError(f"{url}: not in the cache ({dest}) and offline mode is on "
                           "(unset ASTROFM_OFFLINE / HF_HUB_OFFLINE, or download it on a connected machine)")
    try:
        with locked(dest):
            if _verified(dest, sha256):  # another process fetched it while we waited
                return dest
            if dest.exists():
                log.warning("cached %s fails its checksum; downloading it again", dest)
                dest.unlink()
            part = dest.with_name(dest.name + ".part")
            _fetch(url, part, resume=sha256 is not None, timeout=timeout, progress=progress)
            if sha256 is not None:
                actual = sha256_of(part)
                if actual != sha256:
                    part.unlink()
                    raise ChecksumError(f"{url}: SHA-256 mismatch, expected {sha256}, got {actual}; "
                                        "the corrupted file was deleted")
            os.replace(part, dest)
    except DownloadError:
        raise
    except OSError as error:
        raise DownloadError(f"{url}: cannot write {dest} ({error})") from error
    return dest


def _verified(dest: Path, sha256: str | None) -> bool:
    return dest.is_file() and (sha256 is None or sha256_of(dest) == sha256)


def _fetch(url: str, part: Path, *, resume: bool, timeout: float, progress: bool) -> None:
    """Write the content of ``url`` to ``part``; with ``resume``, continue a leftover ``part`` by a range request.

    Resume only when the result is checked by its SHA-256 afterwards: without a validator a file changed on
    the server would be spliced from old and new bytes.
    """
    have = part.stat().st_size if resume and part.exists() else 0
    retry = "partial download kept; retry to resume" if resume else "retry to download it again"
    request = urllib.request.Request(url, headers={"User-Agent": f"astrofm/{__version__}"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have > 0 and response.status == 206
            if resumed and _range_start(response.headers.get("Content-Range")) != have:
                log.warning("%s: the server sent another range than bytes=%d-; downloading it whole", url, have)
                response.close()
                _fetch(url, part, resume=False, timeout=timeout, progress=progress)
                return
            if have and not resumed:
                have = 0  # the server ignored the range: start over
            total = response.headers.get("Content-Length")
            total_size = int(total) + have if total is not None else None
            with open(part, "ab" if resumed else "wb") as out, tqdm(
                    total=total_size, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
                    disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if total_size is not None and part.stat().st_size < total_size:
                raise http.client.IncompleteRead(b"", total_size - part.stat().st_size)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # range beyond the end: the part file is complete (its SHA-256 decides)
            return
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}"
                            + (" (no such file on the server)" if error.code == 404 else "")) from error
    except (http.client.IncompleteRead, ConnectionError) as error:
        raise DownloadError(f"{url}: connection lost after {part.stat().st_size if part.exists() else 0} bytes "
                            f"({retry})") from error
    except TimeoutError as error:
        raise DownloadError(f"{url}: timed out after {timeout:g} s ({retry})") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise DownloadError(f"{url}: timed out after {timeout:g} s ({retry})") from error
        raise DownloadError(f"{url}: cannot connect ({error.reason})") from error


def _range_start(content_range: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes <start>-<end>/<size>`` header (None if absent or malformed)."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", content_range or "")
    return int(match.group(1)) if match else None
