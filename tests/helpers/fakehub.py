"""A minimal Hugging Face hub on loopback: serves local folders as hub repos.

Enough of the hub's HTTP API for ``huggingface_hub``/``datasets`` to resolve a
revision, list files and download them (with HTTP range requests). Point a
client at it with ``HF_ENDPOINT=http://127.0.0.1:<port>`` (set before the
client library is imported: run the client in a subprocess).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves ``repos[(kind, repo_id)] = folder`` (kind: "datasets" or "models"); any revision maps to it."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Path] = {}
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.handle(self, head=True)

            def do_GET(self) -> None:
                hub.handle(self, head=False)

            def do_POST(self) -> None:
                hub.handle(self, head=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def add(self, repo_id: str, folder: Path, kind: str = "datasets") -> None:
        self.repos[(kind, repo_id)] = Path(folder)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- request handling ---------------------------------------------------------------
    def _send(self, h: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
              headers: dict[str, str] | None = None, head: bool = False) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _json(self, h: http.server.BaseHTTPRequestHandler, payload: object, head: bool = False) -> None:
        self._send(h, 200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, head)

    def _find(self, kind: str, parts: list[str]) -> tuple[str, Path, list[str]] | None:
        for (k, repo), folder in self.repos.items():
            n = len(repo.split("/"))
            if k == kind and "/".join(parts[:n]) == repo:
                return repo, folder, parts[n:]
        return None

    def _files(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def _entry(self, folder: Path, path: Path) -> dict[str, object]:
        rel = path.relative_to(folder).as_posix()
        if path.is_dir():
            return {"type": "directory", "path": rel, "oid": SHA}
        data = path.read_bytes()
        return {"type": "file", "path": rel, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}

    def handle(self, h: http.server.BaseHTTPRequestHandler, head: bool) -> None:
        url = urllib.parse.urlparse(h.path)
        self.requests.append(f"{h.command} {url.path}")
        if h.command == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            body = h.rfile.read(length).decode() if length else ""
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:1] == ["api"] and len(parts) > 2:
            kind = parts[1]
            found = self._find(kind, parts[2:])
            if found is None:
                return self._send(h, 404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}, head)
            repo, folder, rest = found
            if rest[:1] == ["revision"] or not rest:
                siblings = [{"rfilename": p.relative_to(folder).as_posix(), "size": p.stat().st_size}
                            for p in self._files(folder)]
                return self._json(h, {"id": repo, "sha": SHA, "siblings": siblings, "private": False,
                                      "disabled": False, "gated": False, "downloads": 0, "likes": 0,
                                      "tags": [], "cardData": {}}, head)
            if rest[:1] == ["tree"]:
                sub = "/".join(rest[2:])
                base = folder / sub if sub else folder
                query = urllib.parse.parse_qs(url.query)
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                items = sorted(base.rglob("*") if recursive else base.iterdir())
                return self._json(h, [self._entry(folder, p) for p in items], head)
            if rest[:1] == ["paths-info"]:
                form = urllib.parse.parse_qs(body)
                try:
                    paths = json.loads(body).get("paths", [])
                except json.JSONDecodeError:
                    paths = form.get("paths", [])
                out = [self._entry(folder, folder / p) for p in paths if (folder / p).exists()]
                return self._json(h, out, head)
            return self._send(h, 404, b"{}", None, head)
        kind = "datasets" if parts[:1] == ["datasets"] else "models"
        parts = parts[1:] if parts[:1] in (["datasets"], ["models"]) else parts
        found = self._find(kind, parts)
        if found is None or len(found[2]) < 3 or found[2][0] != "resolve":
            return self._send(h, 404, b"Not found", {"X-Error-Code": "EntryNotFound"}, head)
        _, folder, rest = found
        file = folder / "/".join(rest[2:])
        if not file.is_file():
            return self._send(h, 404, b"Entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": SHA},
                              head)
        data = file.read_bytes()
        headers = {"X-Repo-Commit": SHA, "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        byte_range = h.headers.get("Range")
        if byte_range and byte_range.startswith("bytes="):
            first, _, last = byte_range[6:].partition("-")
            if first == "":
                start, end = max(0, len(data) - int(last)), len(data) - 1
            else:
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(h, 206, data[start: end + 1], headers, head)
        return self._send(h, 200, data, headers, head)
