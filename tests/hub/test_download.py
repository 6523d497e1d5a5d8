"""Downloads against a loopback server: first fetch, cache hit offline, resume after a kill, corruption, errors."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
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


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["../../escaped.txt", "sub/../../escaped.txt", "ABSOLUTE", "C:\\escaped.txt"])
def test_file_names_outside_the_cache_folder_are_refused(home, tmp_path, name):
    """A remote manifest naming ``../x`` or an absolute path must not write outside its cache folder."""
    outside = tmp_path / "escaped.txt"
    name = str(outside) if name == "ABSOLUTE" else name
    manifest = {"files": {"ok.bin": hashlib.sha256(b"ok").hexdigest(), name: hashlib.sha256(b"pwned").hexdigest()}}
    served = {"/m/manifest.json": json.dumps(manifest).encode(), "/m/ok.bin": b"ok", f"/m/{name}": b"pwned"}
    with FileServer(served) as server:
        with pytest.raises(DownloadError, match="escapes the target folder") as info:
            resolve_pretrained(server.url + "/m/")
        assert repr(name) in str(info.value) and server.url in str(info.value)
        assert [path for path, _ in server.log] == ["/m/manifest.json"], "nothing is fetched from a bad manifest"
    assert not outside.exists() and not list(tmp_path.rglob("escaped.txt"))
    local = tmp_path / "local"
    local.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (local / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for bad in ("../escaped.txt", "linked/x.bin"):
        (local / "manifest.json").write_text(json.dumps({"files": {bad: "0" * 64}}))
        with pytest.raises(DownloadError, match="escapes the target folder"):
            resolve_pretrained(local)


def test_archive_members_outside_the_folder_are_refused(home):
    archive = _tar_gz({"model/config.json": b"{}", "../../evil.txt": b"pwned"})
    with FileServer({"/bad.tar.gz": archive}) as server, \
            pytest.raises(DownloadError, match=r"archive member: file name '\.\./\.\./evil\.txt' escapes"):
        resolve_pretrained(server.url + "/bad.tar.gz")
    assert not list(home.parent.rglob("evil.txt"))


def test_corrupted_files_of_an_unpacked_archive_are_unpacked_again(home):
    files = {"config.json": b'{"a": 1}', "model.safetensors": PAYLOAD}
    manifest = {"files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}
    archive = _tar_gz({**{f"model/{k}": v for k, v in files.items()},
                       "model/manifest.json": json.dumps(manifest).encode()})
    lying = _tar_gz({"config.json": b'{"a": 2}', "manifest.json": json.dumps(manifest).encode()})
    with FileServer({"/model.tar.gz": archive, "/lying.tar.gz": lying}) as server:
        url = server.url + "/model.tar.gz#sha256=" + hashlib.sha256(archive).hexdigest()
        folder = resolve_pretrained(url)
        weights = folder / "model.safetensors"
        weights.write_bytes(PAYLOAD[:-1] + b"x")  # bit rot in the cache
        assert resolve_pretrained(url) == folder
        assert weights.read_bytes() == PAYLOAD, "the cached copy failing its manifest is unpacked again"
        with pytest.raises(ChecksumError, match=r"lying\.tar\.gz.*config\.json: SHA-256 mismatch"):
            resolve_pretrained(server.url + "/lying.tar.gz")


@pytest.mark.parametrize("with_sha", [True, False])
def test_concurrent_downloads_of_one_file_take_turns(home, with_sha):
    """A second download of a file that is being fetched waits for it instead of fighting over ``.part``."""
    dest = home / "shared.bin"
    with FileServer({"/s.bin": PAYLOAD}, Behaviour(chunk_delay=0.003)) as server:
        results: dict[str, object] = {}

        def fetch(name: str) -> None:
            try:
                results[name] = download(server.url + "/s.bin", dest, sha256=DIGEST if with_sha else None,
                                         progress=False)
            except Exception as error:
                results[name] = error

        first = threading.Thread(target=fetch, args=("first",))
        first.start()
        part = dest.with_name("shared.bin.part")
        deadline = time.time() + 10
        while time.time() < deadline and (not part.exists() or part.stat().st_size < 20_000):
            time.sleep(0.005)
        second = threading.Thread(target=fetch, args=("second",))
        second.start()
        first.join()
        second.join()
    assert results == {"first": dest, "second": dest}
    assert dest.read_bytes() == PAYLOAD
    assert server.log == [("/s.bin", None)], "the second caller found the file done and fetched nothing"
    assert not part.exists()


def test_a_leftover_part_is_not_resumed_without_a_checksum(home):
    """Without a SHA-256 nothing proves the leftover bytes belong to the file now on the server."""
    dest = home / "changed.bin"
    dest.parent.mkdir(parents=True)
    dest.with_name("changed.bin.part").write_bytes(b"A" * 40_000)  # from an older version of the file
    with FileServer({"/c.bin": b"B" * 100_000}) as server:
        download(server.url + "/c.bin", dest, progress=False)
        assert server.log == [("/c.bin", None)]
    assert dest.read_bytes() == b"B" * 100_000


def test_a_range_answer_that_does_not_start_where_we_stopped_restarts(home):
    """A 206 whose Content-Range is not ``bytes <have>-`` must not be appended to the part file."""
    requests: list[str | None] = []

    class WholeFileAs206(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.headers.get("Range"))
            self.send_response(206 if self.headers.get("Range") else 200)
            if self.headers.get("Range"):
                self.send_header("Content-Range", f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WholeFileAs206)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    dest = home / "r.bin"
    dest.parent.mkdir(parents=True)
    dest.with_name("r.bin.part").write_bytes(PAYLOAD[:1000])
    try:
        download(f"http://127.0.0.1:{httpd.server_port}/r.bin", dest, sha256=DIGEST, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert dest.read_bytes() == PAYLOAD
    assert requests == ["bytes=1000-", None]


def test_file_system_errors_become_download_errors_naming_the_url(home):
    home.mkdir(parents=True)
    (home / "not-a-folder").write_text("a file where a folder should be")
    with FileServer({"/f.bin": b"data"}) as server, \
            pytest.raises(DownloadError, match=r"/f\.bin: cannot write .*not-a-folder"):
        download(server.url + "/f.bin", home / "not-a-folder" / "f.bin", progress=False)
