"""`db down` in the middle of `collect`, `segment` and `detect predict`: a prompt one-line stop, then a clean resume.

Each test runs its own PostGIS cluster (the session cluster is shared with every other test
module and must stay up), starts the command in a subprocess, stops the cluster once rows
are being written, and asserts the command exits within a generous bound with exit status 3
and one line, no traceback. After starting the cluster again a rerun completes, and every
view / image is stored exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
import torch
from PIL import Image

from streetaudit.flows.collect import collect
from streetaudit.flows.detect_predict import predict
from streetaudit.flows.segment import segment
from streetaudit.models.detectors import build_detector, save_detector
from streetaudit.sql.cluster import LocalCluster
from streetaudit.sql.migrate import migrate
from streetaudit.testing.local_server import LocalProviders
from streetaudit.testing.sample_rows import add_images, along, make_points
from streetaudit.testing.tiny_models import tiny_segformer

KEY = "SEKRET-db-loss-31c7"
EXIT_BOUND_S = 30.0
CLI = [sys.executable, "-m", "streetaudit.cli.main"]


# -- data (points and image rows: testing/sample_rows.py) -----------------------------------
def street_like_jpeg(path: Path, seed: int, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size[1], size[0]), Image.BILINEAR).save(path, quality=90)
    return path


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[tuple[LocalCluster, str]]:
    cluster = LocalCluster(tmp_path / "pg", fast_unsafe=True)
    url = cluster.up()
    migrate(url)
    yield cluster, url
    cluster.destroy()


def count(url: str, sql: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql).fetchone()[0]


def wait_for_rows(process: subprocess.Popen, url: str, sql: str, at_least: int) -> None:
    deadline = time.monotonic() + 180
    while count(url, sql) < at_least:
        if process.poll() is not None:
            pytest.fail(f"the command ended before the database was stopped:\n{process.stdout.read()}")
        assert time.monotonic() < deadline, "the command wrote nothing in 180 s"
        time.sleep(0.1)


def stop_and_time_exit(cluster: LocalCluster, process: subprocess.Popen) -> tuple[float, str]:
    stopped_at = time.monotonic()
    cluster.stop()
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the command was still running 120 s after the database stopped (it hangs)")
    return time.monotonic() - stopped_at, process.stdout.read()


def assert_one_line_stop(output: str, returncode: int, stage: str) -> None:
    assert returncode == 3, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert f"{stage} stopped: no connection to the database" in errors[0]
    assert "rerun" in errors[0]


def stop_mid_run(
    cluster: LocalCluster, args: list[str], env: dict, url: str, written: str, at_least: int, stage: str
) -> str:
    """Run `streetaudit ARGS`, stop the database once `written` counts `at_least` rows, check the
    command's prompt one-line exit, and start the database again; returns its new URL (the
    port may differ after a restart)."""
    process = subprocess.Popen(
        [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wait_for_rows(process, url, written, at_least)
    took, output = stop_and_time_exit(cluster, process)
    print(f"\n{stage} exited {took:.1f} s after the database stopped")
    assert took < EXIT_BOUND_S, f"exit took {took:.1f} s"
    assert_one_line_stop(output, process.returncode, stage)
    return cluster.up()


@pytest.mark.slow
def test_collect_stops_within_seconds_when_the_database_goes_and_resumes_exactly(
    own_cluster, tmp_path, monkeypatch
):
    cluster, url = own_cluster
    n_points = 150
    make_points(url, along((116.39, 39.90), 0.00016, n_points), spacing=14.0)
    env = {
        **os.environ,
        "STREETAUDIT_DATABASE_URL": url,
        "STREETAUDIT_DATA_DIR": str(tmp_path / "data"),
        "STREETAUDIT_BAIDU_AK": KEY,
        "STREETAUDIT_COLLECT_BATCH": "4",
    }
    env.pop("STREETAUDIT_IMAGES_URL", None)
    with LocalProviders(key=KEY, latency=0.03) as server:
        env["STREETAUDIT_BAIDU_URL"] = f"{server.url}/panorama/v2"
        url = stop_mid_run(
            cluster,
            ["collect", "--provider", "baidu", "--concurrency", "4", "--no-progress"],
            env,
            url,
            "SELECT count(*) FROM streetaudit.image",
            40,
            "collect",
        )
        env["STREETAUDIT_DATABASE_URL"] = url
        stored_before = count(url, "SELECT count(*) FROM streetaudit.image")
        assert stored_before < n_points * 4, "the stop came too late to test anything"
        for name, value in env.items():
            if name.startswith("STREETAUDIT_"):
                monkeypatch.setenv(name, value)
        report = collect(url, "baidu", concurrency=4, progress=False)

    assert report.skipped == stored_before and report.ok == n_points * 4 - stored_before
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT point_id, heading, status, uri FROM streetaudit.image").fetchall()
    assert len(rows) == n_points * 4
    assert len({(r[0], r[1]) for r in rows}) == len(rows)
    assert {r[2] for r in rows} == {"ok"}
    on_disk = {str(p) for p in (tmp_path / "data" / "images").rglob("*") if p.is_file()}
    assert on_disk == {r[3] for r in rows}  # files written before the stop were reused, no orphans


@pytest.mark.slow
def test_segment_stops_within_seconds_when_the_database_goes_and_resumes_exactly(own_cluster, tmp_path):
    cluster, url = own_cluster
    model_dir = tiny_segformer(tmp_path / "segformer")
    # Large images make each batch slow enough (logits upsampled to 512x1024) to stop mid-run.
    paths = [street_like_jpeg(tmp_path / f"{i}_0.jpg", seed=i, size=(512, 1024)) for i in range(240)]
    ids = add_images(url, paths)
    env = {**os.environ, "STREETAUDIT_DATABASE_URL": url, "STREETAUDIT_DATA_DIR": str(tmp_path / "data")}
    args = ["segment", "--model", str(model_dir), "--device", "cpu", "--batch-size", "2"]
    url = stop_mid_run(
        cluster,
        [*args, "--workers", "0", "--no-progress"],
        env,
        url,
        "SELECT count(*) FROM streetaudit.segmentation",
        6,
        "segment",
    )
    done_before = count(url, "SELECT count(*) FROM streetaudit.segmentation")
    assert done_before < len(ids), "the stop came too late to test anything"
    report = segment(url, model=str(model_dir), device="cpu", batch_size=8, workers=0, progress=False)
    assert (report.skipped, report.done, report.failed) == (done_before, len(ids) - done_before, 0)
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT image_id, model_id FROM streetaudit.segmentation").fetchall()
        models = conn.execute("SELECT count(*) FROM streetaudit.model").fetchone()[0]
    assert sorted(r[0] for r in stored) == sorted(ids)
    assert models == 1 and {r[1] for r in stored} == {report.model_id}


@pytest.mark.slow
def test_detect_predict_stops_within_seconds_when_the_database_goes_and_resumes_exactly(
    own_cluster, tmp_path
):
    """The boxes are written by a thread of their own (flows/detection_writer.py): a lost
    database must still stop the command at once, with the same line, and lose nothing."""
    cluster, url = own_cluster
    torch.manual_seed(0)
    detector = build_detector("fasterrcnn_tiny", ["window"], options={"min_size": 512, "max_size": 1024})
    model = save_detector(tmp_path / "detector.pt", detector)
    paths = [street_like_jpeg(tmp_path / f"{i}_0.jpg", seed=i, size=(512, 1024)) for i in range(160)]
    ids = add_images(url, paths)
    env = {**os.environ, "STREETAUDIT_DATABASE_URL": url, "STREETAUDIT_DATA_DIR": str(tmp_path / "data")}
    args = ["detect", "predict", "--model", str(model), "--device", "cpu", "--batch-size", "2"]
    url = stop_mid_run(
        cluster,
        [*args, "--score-threshold", "0", "--no-progress"],
        env,
        url,
        "SELECT count(*) FROM streetaudit.detection_done",
        6,
        "detect predict",
    )
    done_before = count(url, "SELECT count(*) FROM streetaudit.detection_done")
    assert done_before < len(ids), "the stop came too late to test anything"
    report = predict(
        url, str(model), batch_size=8, workers=0, device="cpu", score_threshold=0.0, progress=False
    )
    assert report.skipped == done_before and report.done == len(ids) - done_before
    with psycopg.connect(url) as conn:
        done = conn.execute("SELECT image_id FROM streetaudit.detection_done").fetchall()
        orphans = conn.execute(
            """SELECT count(*) FROM streetaudit.detection AS d
               WHERE NOT EXISTS (SELECT 1 FROM streetaudit.detection_done AS f
                                 WHERE f.image_id = d.image_id AND f.model_id = d.model_id)"""
        ).fetchone()[0]
    assert sorted(r[0] for r in done) == sorted(ids) and orphans == 0


def test_a_database_that_is_not_there_is_one_line_and_exit_3(tmp_path):
    """A URL nobody listens on: the same line, not a psycopg traceback, for both commands."""
    from streetaudit.sql.cluster import free_port

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    env = {**os.environ, "STREETAUDIT_DATABASE_URL": url, "STREETAUDIT_DATA_DIR": str(tmp_path / "data")}
    for args in (["collect", "--provider", "synthetic", "--no-progress"], ["segment", "--backend", "masks"]):
        result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert_one_line_stop(result.stdout + result.stderr, result.returncode, args[0])
