"""Collection against a real HTTP server on 127.0.0.1 speaking Baidu's protocol.

Covers: every view stored once, resuming without refetching, Baidu's HTTP-200 JSON error
bodies, 5xx bursts, 429 with Retry-After, timeouts, truncated JPEGs, permanent errors,
the key never leaking, and the input errors the CLI reports.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from streetaudit.flows.collect import CollectStopped, collect
from streetaudit.flows.errors import InputError
from streetaudit.flows.providers.coords import wgs84_to_bd09
from streetaudit.testing.local_server import LocalProviders, Reply, json_reply
from streetaudit.testing.sample_rows import make_points

KEY = "SEKRET-ak-7f3a91"
# Five points along a street in Beijing (inside China, so coordtype conversions matter).
POINTS = [(116.3970 + 0.0003 * i, 39.9087) for i in range(5)]
AREA = "Old Town"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Fast retries and a private image folder; the server's URL is set per test."""
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STREETAUDIT_BAIDU_AK", KEY)
    monkeypatch.setenv("STREETAUDIT_COLLECT_BACKOFF", "0.01")
    monkeypatch.setenv("STREETAUDIT_COLLECT_BACKOFF_MAX", "0.05")
    monkeypatch.setenv("STREETAUDIT_COLLECT_ATTEMPTS", "3")
    monkeypatch.setenv("STREETAUDIT_COLLECT_TIMEOUT", "10")  # generous: a loaded CI machine is slow
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    return tmp_path


@pytest.fixture
def server(env, monkeypatch: pytest.MonkeyPatch):
    with LocalProviders(key=KEY) as srv:
        monkeypatch.setenv("STREETAUDIT_BAIDU_URL", f"{srv.url}/panorama/v2")
        yield srv


@pytest.fixture
def point_ids(fresh_db_url: str) -> list[int]:
    return make_points(fresh_db_url, POINTS, area=AREA, area_points=2)


def rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT point_id, heading, status, uri, sha256, bytes, detail, attempts, width, height
               FROM streetaudit.image ORDER BY point_id, heading"""
        ).fetchall()


def view_of(request) -> tuple[str, str]:
    return request.query.get("location"), request.query.get("heading")


def test_collect_stores_every_view_once_and_resumes_without_refetching(server, point_ids, fresh_db_url):
    report = collect(fresh_db_url, "baidu", concurrency=4, progress=False)
    assert (report.ok, report.missing, report.error, report.skipped) == (20, 0, 0, 0)
    stored = rows(fresh_db_url)
    assert len(stored) == 20
    assert {(r[0], r[1]) for r in stored} == {(p, float(h)) for p in point_ids for h in (0, 90, 180, 270)}
    for _, _, status, uri, sha, size, _, attempts, width, height in stored:
        data = Path(uri).read_bytes()
        assert status == "ok" and attempts == 1 and (width, height) == (320, 160)
        assert hashlib.sha256(data).hexdigest() == sha and len(data) == size
        assert Path(uri).is_absolute() and str(uri).startswith(str(server_data_root()))
    assert len(server.hits) == 20

    again = collect(fresh_db_url, "baidu", concurrency=4, progress=False)
    assert (again.ok, again.skipped, again.requests) == (0, 20, 0)
    assert len(server.hits) == 20


def server_data_root() -> Path:
    import os

    return Path(os.environ["STREETAUDIT_DATA_DIR"]) / "images"


def test_baidu_receives_table1_parameters_in_the_requested_coordtype(
    server, point_ids, fresh_db_url, monkeypatch
):
    monkeypatch.setenv("STREETAUDIT_BAIDU_COORDTYPE", "bd09ll")
    collect(fresh_db_url, "baidu", headings=(45,), pitch=10, fov=80, size=(800, 400), limit=1, progress=False)
    (request,) = server.hits
    q = request.query
    with psycopg.connect(fresh_db_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(p.geom), ST_Y(p.geom) FROM streetaudit.sample_point p JOIN streetaudit.image i "
            "ON i.point_id = p.id"
        ).fetchone()
    expected = wgs84_to_bd09(lon, lat)
    got = tuple(float(v) for v in q["location"].split(","))
    assert got == pytest.approx(expected, abs=1e-6)
    assert abs(got[0] - lon) > 1e-3  # the BD-09 offset really was applied
    assert (q["coordtype"], q["width"], q["height"], q["heading"], q["pitch"], q["fov"]) == (
        "bd09ll",
        "800",
        "400",
        "45",
        "10",
        "80",
    )


def test_baidu_json_no_panorama_body_is_missing_and_never_stored(server, point_ids, fresh_db_url, env):
    first = f"{POINTS[0][0]:.7f}"
    server.script = lambda r: (
        json_reply({"status": 402, "message": "该位置无全景"})
        if r.query["location"].startswith(first)
        else None
    )
    report = collect(fresh_db_url, "baidu", progress=False)
    assert (report.ok, report.missing, report.error) == (16, 4, 0)
    missing = [r for r in rows(fresh_db_url) if r[2] == "missing"]
    assert {r[0] for r in missing} == {point_ids[0]}
    assert all(r[3] is None and r[4] is None and "402" in r[6] for r in missing)
    files = [p for p in (env / "data" / "images").rglob("*") if p.is_file()]
    assert len(files) == 16
    assert all(p.read_bytes()[:3] == b"\xff\xd8\xff" for p in files)
    # Missing views are not asked again.
    collect(fresh_db_url, "baidu", progress=False)
    assert len(server.hits) == 20


def test_bad_key_stops_the_run_and_the_key_never_appears(
    server, point_ids, fresh_db_url, env, monkeypatch, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    server.key = "the-right-key"
    with pytest.raises(CollectStopped) as raised:
        collect(fresh_db_url, "baidu", concurrency=1, progress=True)
    assert "AK" in str(raised.value) and "STREETAUDIT_BAIDU_AK" in str(raised.value)
    assert len(server.hits) < 20  # stopped early instead of burning through every point
    assert rows(fresh_db_url) == []  # a run-level failure is no view's failure: nothing recorded
    with psycopg.connect(fresh_db_url) as conn:
        dump = "".join(str(r) for r in conn.execute("SELECT * FROM streetaudit.image").fetchall())
    out = capsys.readouterr()
    everything = dump + str(raised.value) + caplog.text + out.out + out.err
    assert KEY not in everything
    assert "HTTP Request" in caplog.text and "ak=***" in caplog.text  # httpx logged, redacted
    files = [p for p in (env / "data" / "images").rglob("*") if p.is_file()]
    assert files == []
    # With the key corrected, a plain rerun (no --retry-errors) fetches every view.
    server.key = KEY
    report = collect(fresh_db_url, "baidu", concurrency=1, progress=False)
    assert (report.ok, report.error, report.skipped, report.earlier_errors) == (20, 0, 0, 0)


def test_cli_output_never_contains_the_key(server, cli, db_url, monkeypatch):
    make_points(db_url, POINTS, area=AREA, area_points=2)
    server.key = "another-key"
    result = cli("collect", "--provider", "baidu", "--no-progress")
    assert result.exit_code == 2
    assert "collection stopped" in result.output and KEY not in result.output


def test_500_bursts_are_retried_until_ok(server, point_ids, fresh_db_url):
    seen = Counter()
    lock = threading.Lock()

    def burst(request):
        with lock:
            seen[view_of(request)] += 1
            n = seen[view_of(request)]
        return Reply(status=503, body=b"busy", content_type="text/plain") if n <= 2 else None

    server.script = burst
    report = collect(fresh_db_url, "baidu", progress=False)
    assert (report.ok, report.error, report.retries) == (20, 0, 40), (sorted(seen.values()), report.errors)
    assert all(r[2] == "ok" and r[7] == 3 for r in rows(fresh_db_url))


def test_429_retry_after_is_honoured(server, point_ids, fresh_db_url):
    times: list[float] = []

    def throttle(request):
        times.append(time.monotonic())
        return (
            Reply(status=429, headers={"Retry-After": "1"}, content_type="text/plain")
            if len(times) == 1
            else None
        )

    server.script = throttle
    report = collect(fresh_db_url, "baidu", limit=1, headings=(0,), progress=False)
    assert report.ok == 1 and len(times) == 2
    assert times[1] - times[0] >= 1.0


def test_timeouts_end_as_error_after_retries_and_retry_errors_fetches_them(
    server, point_ids, fresh_db_url, monkeypatch
):
    monkeypatch.setenv("STREETAUDIT_COLLECT_TIMEOUT", "0.4")
    slow = f"{POINTS[1][0]:.7f}"
    server.script = lambda r: Reply(delay=1.2) if r.query["location"].startswith(slow) else None
    report = collect(fresh_db_url, "baidu", progress=False)
    assert (report.ok, report.error) == (16, 4)
    errors = [r for r in rows(fresh_db_url) if r[2] == "error"]
    assert all("timed out" in r[6] and "after 3 attempts" in r[6] and r[7] == 3 for r in errors)

    server.script = lambda r: None
    monkeypatch.setenv("STREETAUDIT_COLLECT_TIMEOUT", "10")
    before = len(server.hits)
    assert collect(fresh_db_url, "baidu", progress=False).requests == 0  # errors are not retried by default
    report = collect(fresh_db_url, "baidu", retry_errors=True, progress=False)
    assert (report.ok, report.skipped) == (4, 16)
    assert len(server.hits) - before == 4
    fixed = [r for r in rows(fresh_db_url) if r[0] == point_ids[1]]
    assert all(r[2] == "ok" and r[6] is None and r[7] == 4 for r in fixed)


def test_truncated_jpeg_is_never_stored(server, point_ids, fresh_db_url, env):
    cut = f"{POINTS[2][0]:.7f}"
    on_wire = f"{POINTS[3][0]:.7f}"
    wire_seen = Counter()

    def truncate(request):
        location = request.query["location"]
        if location.startswith(cut):
            return Reply(body=server.jpeg[: len(server.jpeg) // 2])  # complete HTTP body, half a JPEG
        if location.startswith(on_wire):
            wire_seen[view_of(request)] += 1
            if wire_seen[view_of(request)] == 1:  # connection dropped mid-body once
                return Reply(body=server.jpeg, cut_at=len(server.jpeg) // 3)
        return None

    server.script = truncate
    report = collect(fresh_db_url, "baidu", progress=False)
    assert (report.ok, report.error) == (16, 4)
    errors = [r for r in rows(fresh_db_url) if r[2] == "error"]
    assert {r[0] for r in errors} == {point_ids[2]}
    assert all("truncated JPEG" in r[6] for r in errors), [r[6] for r in errors]
    for path in (env / "data" / "images").rglob("*.jpg"):
        assert path.read_bytes().endswith(b"\xff\xd9")


def test_permanent_http_error_is_not_retried(server, point_ids, fresh_db_url):
    server.script = lambda r: Reply(status=400, body=b"bad", content_type="text/plain")
    report = collect(fresh_db_url, "baidu", limit=1, progress=False)
    assert (report.error, report.retries, report.requests) == (4, 0, 4)


def test_where_area_and_limit_select_points(server, point_ids, fresh_db_url):
    report = collect(fresh_db_url, "baidu", where_area=AREA, progress=False)
    assert report.points == 2 and report.ok == 8
    assert {r[0] for r in rows(fresh_db_url)} == set(point_ids[:2])
    report = collect(fresh_db_url, "baidu", limit=3, progress=False)
    assert report.points == 3


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"size": (2048, 512)}, "--size 2048x512 exceeds"),
        ({"headings": (0, 360)}, "--headings"),
        ({"pitch": 120}, "--pitch"),
        ({"concurrency": 0}, "--concurrency"),
        ({"rate": 0}, "--rate"),
        ({"limit": 0}, "--limit"),
        ({"where_area": "Atlantis"}, "--where-area: no heritage area named 'Atlantis'"),
    ],
)
def test_bad_parameters_are_named(server, fresh_db_url, kwargs, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        collect(fresh_db_url, "baidu", progress=False, **kwargs)


def test_provider_without_key_is_a_clear_error(cli, monkeypatch):
    monkeypatch.delenv("STREETAUDIT_BAIDU_AK", raising=False)
    result = cli("collect", "--provider", "baidu")
    assert result.exit_code == 2 and "STREETAUDIT_BAIDU_AK" in result.output
    result = cli("collect", "--provider", "flickr")
    assert result.exit_code == 2 and "--provider must be one of" in result.output
    result = cli("collect", "--provider", "synthetic", "--size", "big")
    assert result.exit_code == 2 and "--size must look like 1024x512" in result.output


def test_images_go_to_an_fsspec_url_when_configured(env, point_ids, fresh_db_url, monkeypatch):
    import fsspec

    monkeypatch.setenv("STREETAUDIT_IMAGES_URL", "memory://sa-test-images")
    report = collect(fresh_db_url, "synthetic", headings=(0,), size=(128, 64), limit=2, progress=False)
    assert report.ok == 2
    for row in rows(fresh_db_url):
        assert row[3].startswith("memory://sa-test-images/synthetic/")
        with fsspec.open(row[3], "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == row[4]
        with fsspec.open(row[3].removesuffix(".jpg") + ".labels.png", "rb") as handle:
            assert handle.read()[:4] == b"\x89PNG"
    assert not [p for p in fsspec.filesystem("memory").find("/sa-test-images") if ".tmp-" in p]


def test_bad_settings_name_the_variable(cli, monkeypatch):
    monkeypatch.setenv("STREETAUDIT_COLLECT_ATTEMPTS", "0")
    result = cli("collect", "--provider", "synthetic", "--no-progress")
    assert result.exit_code == 2 and "STREETAUDIT_COLLECT_ATTEMPTS" in result.output
    assert "(got '0')" in result.output
    monkeypatch.setenv("STREETAUDIT_COLLECT_ATTEMPTS", "3")
    monkeypatch.setenv("STREETAUDIT_FOLDER_RADIUS", "wide")
    result = cli("collect", "--provider", "synthetic", "--no-progress")
    assert result.exit_code == 2 and "STREETAUDIT_FOLDER_RADIUS" in result.output
    assert "wide" not in result.output  # provider settings hold keys: values are never echoed
