"""Downloads against a loopback server: first fetch, cache hit offline, resume after a kill, corruption, errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from astrofm.hub.download import ChecksumError, DownloadError, OfflineError, download
from astrofm.hub.resolve import resolve_pretrained
from tests.helpers.fileserver import Behaviour, FileServer

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROFM_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ASTROFM_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return tmp_path / "cache"


def test_first_download_then_cache_hit_with_server_stopped(home, monkeypatch):
    server = FileServer({"/w.bin": PAYLOAD}).__enter__()
    dest = home / "w.bin"
    download(server.url + "/w.bin", dest, sha256=DIGEST, progress=False)
    assert dest.read_bytes() == PAYLOAD
    url = server.url + "/w.bin"
    server.stop()
    assert download(url, dest, sha256=DIGEST) == dest  # no network needed
    monkeypatch.setenv("ASTROFM_OFFLINE", "1")
    assert download(url, dest, sha256=DIGEST) == dest
    with pytest.raises(OfflineError, match="offline mode"):
        download(url, home / "other.bin", sha256=DIGEST)


def test_killed_download_resumes_with_a_range_request(home):
    dest = home / "big.bin"
    with FileServer({"/big.bin": PAYLOAD}, Behaviour(chunk_delay=0.01)) as server:
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from astrofm.hub.download import download; "
                f"download({server.url + '/big.bin'!r}, {str(dest)!r}, sha256={DIGEST!r}, progress=False)")
        proc = subprocess.Popen([sys.executable, "-c", code])
        part = dest.with_name("big.bin.part")
        deadline = time.time() + 60
        while time.time() < deadline and (not part.exists() or part.stat().st_size < 60_000):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not dest.exists(), "a killed download never leaves a partial file under the final name"
        have = part.stat().st_size
        assert 0 < have < len(PAYLOAD)
        server.behaviour.chunk_delay = 0
        download(server.url + "/big.bin", dest, sha256=DIGEST, progress=False)
        assert dest.read_bytes() == PAYLOAD
        assert server.log[-1] == ("/big.bin", f"bytes={have}-")


def test_dropped_connection_keeps_the_part_and_resumes(home):
    dest = home / "drop.bin"
    with FileServer({"/d.bin": PAYLOAD}, Behaviour(drop_after=100_000)) as server:
        with pytest.raises(DownloadError, match="retry to resume"):
            download(server.url + "/d.bin", dest, sha256=DIGEST, progress=False)
        assert not dest.exists()
        download(server.url + "/d.bin", dest, sha256=DIGEST, progress=False)
        assert dest.read_bytes() == PAYLOAD
        assert server.log[-1][1] is not None and server.log[-1][1].startswith("bytes=")


def test_corrupted_file_is_refused_and_deleted(home):
    dest = home / "bad.bin"
    with FileServer({"/bad.bin": PAYLOAD[:-1] + b"x"}) as server:
        with pytest.raises(ChecksumError, match="SHA-256 mismatch") as info:
            download(server.url + "/bad.bin", dest, sha256=DIGEST, progress=False)
        assert "/bad.bin" in str(info.value)
    assert not dest.exists() and not dest.with_name("bad.bin.part").exists()


def test_404_and_timeout_are_clear(home):
    with FileServer({}, Behaviour(first_byte_delay=3)) as server:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(server.url + "/missing.bin", home / "m.bin", progress=False)
        server.files["/slow.bin"] = PAYLOAD
        with pytest.raises(DownloadError, match="timed out"):
            download(server.url + "/slow.bin", home / "s.bin", timeout=0.5, progress=False)


def test_folder_url_with_manifest_and_archive_url(home, tmp_path, monkeypatch):
    files = {"config.json": b'{"a": 1}', "model.safetensors": PAYLOAD}
    manifest = {"files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"model/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    served = {f"/m/{k}": v for k, v in files.items()}
    served["/m/manifest.json"] = json.dumps(manifest).encode()
    served["/model.tar.gz"] = archive
    with FileServer(served) as server:
        folder = resolve_pretrained(server.url + "/m/")
        assert (folder / "model.safetensors").read_bytes() == PAYLOAD
        unpacked = resolve_pretrained(server.url + "/model.tar.gz#sha256=" + hashlib.sha256(archive).hexdigest())
        assert (unpacked / "config.json").read_bytes() == files["config.json"]
        with pytest.raises(ChecksumError):
            resolve_pretrained(server.url + "/model.tar.gz#sha256=" + "0" * 64)
    monkeypatch.setenv("ASTROFM_OFFLINE", "1")  # cached copies load with the server gone
    assert resolve_pretrained(server.url + "/m/") == folder
