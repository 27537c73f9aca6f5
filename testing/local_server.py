"""A local stand-in for the providers' HTTP APIs on 127.0.0.1, for the tests and the benchmark.

It speaks the parts of each protocol the providers use — Baidu's `/panorama/v2`, Google's
`/streetview/metadata` and `/streetview`, Mapillary's `/images` search and thumbnails — and
answers a valid, unique JPEG by default. A test swaps `script` to inject faults (JSON error
bodies with HTTP 200, 5xx bursts, 429 with Retry-After, stalls, truncated bodies); every
request is recorded in `hits`, so a test can count refetches. Nothing here is used in
production; it lives in the package so `bench/collect.py` can use it too.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from PIL import Image as PILImage


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops connection attempts under bursts of concurrency,
    # which the client would see as connect timeouts.
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client killed mid-request (the kill -9 test) is expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_query: str = ""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "image/jpeg"
    # Send this many bytes of body only, then close (a body cut short on the wire).
    cut_at: int | None = None
    delay: float = 0.0


def base_jpeg(width: int = 320, height: int = 160, quality: int = 80) -> bytes:
    """A textured JPEG big enough to pass cleaning's minimum size."""
    image = PILImage.effect_noise((width, height), 64).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def unique_jpeg(base: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment segment, so each view has its own sha256."""
    text = tag.encode()[:60000]
    return base[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + base[2:]


def json_reply(payload: object, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(payload).encode(), content_type="application/json")


class LocalProviders:
    """Threaded HTTP server; `url` is its base, e.g. http://127.0.0.1:PORT."""

    def __init__(self, *, latency: float = 0.0, key: str = "test-key", log_hits: bool = True):
        self.latency = latency
        self.key = key
        self.jpeg = base_jpeg()
        self.hits: list[Request] = []
        self.log_hits = log_hits
        self.count = 0
        self.lock = threading.Lock()
        self.script: Callable[[Request], Reply | None] = lambda request: None
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalProviders:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- default answers ---------------------------------------------------------------------
    def default(self, request: Request) -> Reply:
        q = request.query
        if request.path.endswith("/panorama/v2"):
            if q.get("ak") != self.key:
                return json_reply({"status": 200, "message": "APP不存在，AK有误请检查再重试"})
            return Reply(body=unique_jpeg(self.jpeg, f"baidu {q.get('location')} {q.get('heading')}"))
        if request.path.endswith("/streetview/metadata"):
            if q.get("key") != self.key:
                return json_reply(
                    {"status": "REQUEST_DENIED", "error_message": "The provided API key is invalid."}
                )
            lat, lon = (float(v) for v in q["location"].split(","))
            return json_reply(
                {
                    "status": "OK",
                    "pano_id": f"pano-{lat:.5f}-{lon:.5f}",
                    "date": "2021-07",
                    "location": {"lat": lat + 1e-5, "lng": lon + 1e-5},
                }
            )
        if request.path.endswith("/streetview"):
            if q.get("key") != self.key:
                return Reply(status=403, body=b"forbidden", content_type="text/plain")
            return Reply(body=unique_jpeg(self.jpeg, f"google {q.get('pano')} {q.get('heading')}"))
        if request.path.endswith("/images"):
            if request.headers.get("authorization") != f"OAuth {self.key}":
                return json_reply({"error": {"message": "Invalid OAuth access token", "code": 190}}, 401)
            return json_reply({"data": self.mapillary_images(q["bbox"])})
        if request.path.startswith("/thumb/"):
            return Reply(body=unique_jpeg(self.jpeg, f"mapillary {request.path}"))
        return Reply(status=404, body=b"not found", content_type="text/plain")

    def mapillary_images(self, bbox: str) -> list[dict]:
        """Four images at the bbox centre, facing 0, 90, 180 and 270 degrees."""
        x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
        lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
        return [
            {
                "id": f"{lon:.6f}_{lat:.6f}_{angle}",
                "captured_at": 1625097600000,
                "compass_angle": angle,
                "geometry": {"type": "Point", "coordinates": [lon + 2e-5, lat]},
                "thumb_1024_url": f"{self.url}/thumb/{lon:.6f}_{lat:.6f}_{angle}.jpg",
            }
            for angle in (0, 90, 180, 270)
        ]

    # -- the HTTP handler ----------------------------------------------------------------------
    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    parts.query,
                )
                with owner.lock:
                    owner.count += 1
                    if owner.log_hits:
                        owner.hits.append(request)
                reply = owner.script(request) or owner.default(request)
                if owner.latency or reply.delay:
                    time.sleep(owner.latency + reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.cut_at is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(reply.body if reply.cut_at is None else reply.body[: reply.cut_at])
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                if reply.cut_at is not None:
                    self.close_connection = True

        return Handler
