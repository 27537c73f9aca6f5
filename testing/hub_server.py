"""A local stand-in for the Hugging Face Hub's download API, serving one folder as a model repo.

It answers what `huggingface_hub.snapshot_download` asks, in the Hub's shape: the revision's
commit (`/api/models/{repo}/revision/{rev}`), its file tree, and each file's metadata (HEAD,
with X-Repo-Commit and ETag) and bytes (GET). Tests point HF_ENDPOINT here to fetch a real
checkpoint folder without a network.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "f" * 40


@contextmanager
def serving_repo(repo_id: str, folder: Path) -> Iterator[tuple[str, list[str]]]:
    """(endpoint URL, paths requested) while `folder` is served as `repo_id` at COMMIT."""
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, value) -> None:
            self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def do_GET(self) -> None:
            path = unquote(urlparse(self.path).path)
            requested.append(f"{self.command} {path}")
            api = f"/api/models/{repo_id}"
            if path.startswith(f"{api}/revision/"):
                siblings = [{"rfilename": name} for name in files]
                return self._json({"id": repo_id, "sha": COMMIT, "siblings": siblings, "private": False})
            if path.startswith(f"{api}/tree/"):
                tree = [
                    {"type": "file", "path": name, "size": p.stat().st_size, "oid": _sha1(p)}
                    for name, p in files.items()
                ]
                return self._json(tree)
            prefix = f"/{repo_id}/resolve/"
            if path.startswith(prefix):
                name = path[len(prefix) :].split("/", 1)[1]
                if name in files:
                    body = files[name].read_bytes()
                    etag = f'"{hashlib.sha256(body).hexdigest()}"'
                    return self._send(200, body, {"X-Repo-Commit": COMMIT, "ETag": etag})
            return self._send(404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"})

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()
