"""Which outcomes a rerun asks again, against the real local HTTP server and real folders.

Run-level failures (quota spent, host unreachable) record nothing, so the corrected rerun
fetches those views without a flag; a view's own failure is `error`, named by the next
run's summary with the flag that retries it; `missing` from a folder holds only while the
folder is unchanged; a run that produced nothing but errors exits non-zero.
"""

from __future__ import annotations

import io
from pathlib import Path

import psycopg
import pytest
from PIL import Image as PILImage

from streetaudit.flows.collect import CollectStopped, collect
from streetaudit.sql.cluster import free_port
from streetaudit.testing.local_server import LocalProviders, Reply, json_reply
from streetaudit.testing.sample_rows import make_points

KEY = "SEKRET-retry-8d21"
LON, LAT = 116.3970, 39.9087
POINTS = [(LON + 0.0003 * i, LAT) for i in range(3)]


def statuses(url: str) -> dict[tuple[int, float], str]:
    with psycopg.connect(url) as conn:
        return {
            (p, h): s for p, h, s in conn.execute("SELECT point_id, heading, status FROM streetaudit.image")
        }


def text(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STREETAUDIT_BAIDU_AK", KEY)
    monkeypatch.setenv("STREETAUDIT_COLLECT_BACKOFF", "0.01")
    monkeypatch.setenv("STREETAUDIT_COLLECT_BACKOFF_MAX", "0.05")
    monkeypatch.setenv("STREETAUDIT_COLLECT_ATTEMPTS", "3")
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    return tmp_path


@pytest.fixture
def server(env, monkeypatch):
    with LocalProviders(key=KEY) as srv:
        monkeypatch.setenv("STREETAUDIT_BAIDU_URL", f"{srv.url}/panorama/v2")
        yield srv


# -- run-level failures are not view failures --------------------------------------------------
def test_spent_quota_records_nothing_and_the_next_day_fetches_every_view(server, fresh_db_url):
    make_points(fresh_db_url, POINTS)
    server.script = lambda r: json_reply({"status": 302, "message": "天配额超限，限制访问"})
    with pytest.raises(CollectStopped, match="quota exhausted"):
        collect(fresh_db_url, "baidu", concurrency=2, progress=False)
    assert statuses(fresh_db_url) == {}
    server.script = lambda r: None
    report = collect(fresh_db_url, "baidu", concurrency=2, progress=False)
    assert (report.ok, report.error, report.earlier_errors) == (12, 0, 0)


def test_unreachable_host_stops_the_run_and_records_nothing(env, fresh_db_url, monkeypatch):
    make_points(fresh_db_url, POINTS)
    monkeypatch.setenv("STREETAUDIT_BAIDU_URL", f"http://127.0.0.1:{free_port()}/panorama/v2")
    with pytest.raises(CollectStopped, match="cannot be reached") as raised:
        collect(fresh_db_url, "baidu", concurrency=2, progress=False)
    assert "cannot connect" in str(raised.value) and KEY not in str(raised.value)
    assert statuses(fresh_db_url) == {}
    with LocalProviders(key=KEY) as srv:
        monkeypatch.setenv("STREETAUDIT_BAIDU_URL", f"{srv.url}/panorama/v2")
        report = collect(fresh_db_url, "baidu", concurrency=2, progress=False)
    assert report.ok == 12 and set(statuses(fresh_db_url).values()) == {"ok"}


# -- view failures: named by the next run, retried with the flag ---------------------------------
def test_earlier_errors_are_named_with_the_flag_that_retries_them(server, fresh_db_url, cli, monkeypatch):
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", fresh_db_url)
    first = f"{POINTS[0][0]:.7f}"
    make_points(fresh_db_url, POINTS)
    server.script = lambda r: (
        Reply(status=400, body=b"bad", content_type="text/plain")
        if r.query["location"].startswith(first)
        else None
    )
    result = cli("collect", "--provider", "baidu", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "8 ok, 0 missing, 4 error" in text(result)
    assert "4 views failed in this run" in text(result) and "--retry-errors" in text(result)

    server.script = lambda r: None
    result = cli("collect", "--provider", "baidu", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "0 ok, 0 missing, 0 error, 8 already stored" in text(result)
    assert "4 views failed in earlier runs and were not asked again; --retry-errors" in text(result)

    result = cli("collect", "--provider", "baidu", "--retry-errors", "--no-progress")
    assert result.exit_code == 0 and "4 ok, 0 missing, 0 error, 8 already stored" in text(result)
    assert set(statuses(fresh_db_url).values()) == {"ok"}


def test_a_run_with_only_errors_exits_1(server, fresh_db_url, cli, monkeypatch):
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", fresh_db_url)
    make_points(fresh_db_url, POINTS)
    server.script = lambda r: Reply(status=400, body=b"bad", content_type="text/plain")
    result = cli("collect", "--provider", "baidu", "--no-progress")
    assert result.exit_code == 1, result.output
    assert "0 ok, 0 missing, 12 error" in text(result)
    assert "error: collect: no view is ok or missing, 12 failed" in text(result)
    assert "12 x baidu panorama: HTTP 400" in text(result)
    # Still nothing but errors on the rerun (they are not asked again): still exit 1.
    result = cli("collect", "--provider", "baidu", "--no-progress")
    assert result.exit_code == 1 and "12 views failed in earlier runs" in text(result)


def test_recheck_missing_asks_the_provider_again(server, fresh_db_url):
    make_points(fresh_db_url, POINTS)
    server.script = lambda r: json_reply({"status": 402, "message": "该位置无全景"})
    assert collect(fresh_db_url, "baidu", progress=False).missing == 12
    server.script = lambda r: None
    assert collect(fresh_db_url, "baidu", progress=False).requests == 0  # missing is final by default
    report = collect(fresh_db_url, "baidu", recheck_missing=True, progress=False)
    assert (report.ok, report.requests) == (12, 12)
    assert set(statuses(fresh_db_url).values()) == {"ok"}


# -- folder: missing holds only for the folder as it was ---------------------------------------
def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 32), colour).save(out, format="JPEG")
    return out.getvalue()


def write_folder(folder: Path, photos: dict[str, tuple[float, float, float]]) -> None:
    """photos: file name -> (lon, lat, heading), listed in index.csv."""
    folder.mkdir(exist_ok=True)
    lines = ["path,lon,lat,heading"]
    for i, (name, (lon, lat, heading)) in enumerate(photos.items()):
        if not (folder / name).exists():
            (folder / name).write_bytes(jpeg((40 * i % 256, 100, 200)))
        lines.append(f"{name},{lon},{lat},{heading}")
    (folder / "index.csv").write_text("\n".join(lines) + "\n")


def test_folder_missing_is_rechecked_when_the_folder_changes(env, fresh_db_url):
    ids = make_points(fresh_db_url, POINTS)
    folder = env / "photos"
    write_folder(folder, {"a.jpg": (POINTS[0][0], LAT, 0)})
    report = collect(fresh_db_url, f"folder:{folder}", progress=False)
    assert (report.ok, report.missing) == (1, 11)

    unchanged = collect(fresh_db_url, f"folder:{folder}", progress=False)
    assert (unchanged.ok, unchanged.missing, unchanged.skipped) == (0, 0, 12)

    # New photos: the views that were missing are looked up again; the ok one is kept.
    write_folder(folder, {"a.jpg": (POINTS[0][0], LAT, 0), "b.jpg": (POINTS[1][0], LAT, 90)})
    report = collect(fresh_db_url, f"folder:{folder}", progress=False)
    assert (report.ok, report.missing, report.skipped) == (1, 10, 1)
    assert statuses(fresh_db_url)[(ids[1], 90.0)] == "ok"

    # Another folder altogether: its photos fill views the first folder had none for.
    other = env / "more"
    write_folder(other, {"c.jpg": (POINTS[2][0], LAT, 180)})
    report = collect(fresh_db_url, f"folder:{other}", progress=False)
    assert (report.ok, report.missing, report.skipped) == (1, 9, 2)
    assert statuses(fresh_db_url)[(ids[2], 180.0)] == "ok"
    assert list(statuses(fresh_db_url).values()).count("ok") == 3
