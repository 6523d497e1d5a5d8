"""A static file server on loopback with HTTP range support and failure injection, for download tests."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Behaviour:
    """How the server misbehaves: slow chunks, a dropped connection, or a delayed first byte."""

    chunk_delay: float = 0.0
    drop_after: int | None = None  # close the connection after sending this many bytes (once)
    first_byte_delay: float = 0.0


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    behaviour: Behaviour = field(default_factory=Behaviour)
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def __post_init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.log.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                time.sleep(server.behaviour.first_byte_delay)
                sent = 0
                for i in range(0, len(body), 4096):
                    piece = body[i: i + 4096]
                    drop = server.behaviour.drop_after
                    if drop is not None and sent + len(piece) > drop:
                        self.wfile.write(piece[: drop - sent])
                        self.wfile.flush()
                        server.behaviour.drop_after = None
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(piece)
                    sent += len(piece)
                    time.sleep(server.behaviour.chunk_delay)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
