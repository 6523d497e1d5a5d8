"""Atomic, resumable, checksummed HTTP(S) downloads.

A download goes to ``<dest>.part`` next to its destination. If interrupted,
the next call resumes it with an HTTP range request. When complete, the file
is verified against its SHA-256; a mismatch deletes it and raises. Only then
is it renamed into place, so the destination is either absent or complete
and verified.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from astrofm._version import __version__
from astrofm.errors import AstrofmError
from astrofm.hub.cache import is_offline, sha256_of

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
    is downloaded again. Raises ``OfflineError`` in offline mode when the
    file is not cached, ``ChecksumError`` on a mismatch, and ``DownloadError``
    for HTTP errors (404 ...) and timeouts, each naming the URL.
    """
    dest = Path(dest)
    if dest.exists():
        if sha256 is None or sha256_of(dest) == sha256:
            return dest
        log.warning("cached %s fails its checksum; downloading it again", dest)
        dest.unlink()
    if is_offline():
        raise OfflineError(f"{url}: not in the cache ({dest}) and offline mode is on "
                           "(unset ASTROFM_OFFLINE / HF_HUB_OFFLINE, or download it on a connected machine)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"astrofm/{__version__}"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have > 0 and response.status == 206
            if have and not resumed:
                have = 0  # the server ignored the range: start over
            total = response.headers.get("Content-Length")
            total_size = int(total) + have if total is not None else None
            with open(part, "ab" if resumed else "wb") as out, tqdm(
                    total=total_size, initial=have, unit="B", unit_scale=True, desc=dest.name,
                    disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if total_size is not None and part.stat().st_size < total_size:
                raise http.client.IncompleteRead(b"", total_size - part.stat().st_size)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # range beyond the end: the part file is already complete
            pass
        else:
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}"
                                + (" (no such file on the server)" if error.code == 404 else "")) from error
    except (http.client.IncompleteRead, ConnectionError) as error:
        raise DownloadError(f"{url}: connection lost after {part.stat().st_size if part.exists() else 0} bytes "
                            "(partial download kept; retry to resume)") from error
    except TimeoutError as error:
        raise DownloadError(f"{url}: timed out after {timeout:g} s (partial download kept; retry to resume)") \
            from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise DownloadError(f"{url}: timed out after {timeout:g} s (partial download kept; retry to resume)") \
                from error
        raise DownloadError(f"{url}: cannot connect ({error.reason})") from error
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
            raise ChecksumError(f"{url}: SHA-256 mismatch, expected {sha256}, got {actual}; "
                                "the corrupted file was deleted")
    os.replace(part, dest)
    return dest
