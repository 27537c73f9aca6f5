"""kill -9 of a running `streetaudit collect`, then a rerun: every view exactly once, no partial files.

The server injects faults while the subprocess runs (no-imagery JSON bodies, a 503 on the
first try of some views, views that always fail), so the resumed run also has to keep its
missing and error rows as they were.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
from PIL import Image as PILImage

from streetaudit.flows.collect import collect
from streetaudit.testing.local_server import LocalProviders, Reply, json_reply
from streetaudit.testing.sample_rows import along, make_points

KEY = "SEKRET-kill-test-5d2e"
N_POINTS = 60
HEADINGS = (0, 90, 180, 270)


def faults(server: LocalProviders):
    """No imagery at every 10th point, one view always failing, 503 on the first try of every 7th view."""
    seen: Counter = Counter()
    lock = threading.Lock()

    def script(request):
        lon = float(request.query["location"].split(",")[0])
        index = round((lon - 116.39) / 0.00016)
        view = (index, request.query["heading"])
        with lock:
            seen[view] += 1
            tries = seen[view]
        if index % 10 == 3:
            return json_reply({"status": 402, "message": "该位置无全景"})
        if view == (5, "90"):
            return Reply(status=500, body=b"boom", content_type="text/plain")
        if hash(view) % 7 == 0 and tries == 1:
            return Reply(status=503, body=b"busy", content_type="text/plain")
        return None

    return script


def ok_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM streetaudit.image WHERE status = 'ok'").fetchone()[0]


def test_kill_during_collect_then_rerun_stores_every_view_exactly_once(fresh_db_url, tmp_path, monkeypatch):
    make_points(fresh_db_url, along((116.39, 39.90), 0.00016, N_POINTS), spacing=14.0)
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "STREETAUDIT_DATABASE_URL": fresh_db_url,
        "STREETAUDIT_DATA_DIR": str(data_dir),
        "STREETAUDIT_BAIDU_AK": KEY,
        "STREETAUDIT_COLLECT_BACKOFF": "0.01",
        "STREETAUDIT_COLLECT_ATTEMPTS": "3",
    }
    with LocalProviders(key=KEY, latency=0.02) as server:
        server.script = faults(server)
        env["STREETAUDIT_BAIDU_URL"] = f"{server.url}/panorama/v2"
        for name, value in env.items():
            if name.startswith("STREETAUDIT_"):
                monkeypatch.setenv(name, value)
        cli = [
            sys.executable,
            "-m",
            "streetaudit.cli.main",
            "collect",
            "--provider",
            "baidu",
            "--no-progress",
        ]
        process = subprocess.Popen(
            [*cli, "--concurrency", "4"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while ok_rows(fresh_db_url) < 40:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "the subprocess stored nothing in 90 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        output = process.stdout.read().decode()
        hits_at_kill = Counter((r.query["location"], r.query["heading"]) for r in server.hits)
        stored_at_kill = ok_rows(fresh_db_url)
        assert stored_at_kill < N_POINTS * len(HEADINGS) * 0.9, "the kill came too late to test anything"

        report = collect(fresh_db_url, "baidu", concurrency=4, progress=False)
        hits = Counter((r.query["location"], r.query["heading"]) for r in server.hits)

    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            "SELECT point_id, heading, status, uri, sha256, detail FROM streetaudit.image ORDER BY 1, 2"
        ).fetchall()
    statuses = Counter(r[2] for r in rows)
    assert len(rows) == N_POINTS * len(HEADINGS)
    assert len({(r[0], r[1]) for r in rows}) == len(rows)
    assert statuses == {"ok": 215, "missing": 24, "error": 1}
    # Every ok row points at a complete, decodable file with its hash; nothing else is on disk.
    images = data_dir / "images"
    for _, _, status, uri, sha, _ in rows:
        if status == "ok":
            data = Path(uri).read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha
            with PILImage.open(Path(uri)) as image:
                image.load()
    on_disk = {str(p) for p in images.rglob("*") if p.is_file()}
    assert on_disk == {r[3] for r in rows if r[2] == "ok"}
    # Views stored before the kill were not asked again; only those in flight were refetched.
    refetched = [v for v, n in hits_at_kill.items() if hits[v] > n and v in hits_at_kill]
    ok_requests = sum(1 for v in hits if hits[v] > hits_at_kill.get(v, 0))
    assert len(refetched) <= 4 + 32, refetched  # in flight (concurrency) + one unwritten batch
    assert KEY not in output
    print(
        f"\nfault-injection run: killed after {stored_at_kill} ok rows; rerun fetched {ok_requests} views, "
        f"{len(refetched)} of them refetched after the kill; final ok {statuses['ok']}, "
        f"missing {statuses['missing']}, error {statuses['error']} (rerun report: ok {report.ok}, "
        f"missing {report.missing}, error {report.error}, skipped {report.skipped})"
    )
