"""Many workers on one stage: concurrent `collect`, `segment`, `detect predict` and `explain`
processes share the work through leases (flows/leases.py), with no view fetched twice, no row
twice, and nothing left undone when one of them is killed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import psycopg
import pytest
import torch

from streetaudit.flows.collect import collect
from streetaudit.models.detectors import build_detector, save_detector
from streetaudit.testing.local_server import LocalProviders
from streetaudit.testing.sample_rows import along, make_points

pytestmark = pytest.mark.slow

KEY = "SEKRET-workers-7f1c"
HEADINGS = (0, 90, 180, 270)


def count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streetaudit.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def base_env(url: str, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREETAUDIT_")}
    env.update(
        STREETAUDIT_DATABASE_URL=url,
        STREETAUDIT_DATA_DIR=str(tmp_path / "data"),
        STREETAUDIT_LEASE_TTL="3",  # a killed worker's batch is taken over after 3 s
        STREETAUDIT_LEASE_POLL="0.5",
    )
    return env


def test_three_collectors_one_killed_fetch_every_view_once(fresh_db_url, tmp_path):
    n_points = 48
    make_points(fresh_db_url, along((116.39, 39.90), 0.0003, n_points), spacing=25.0)
    env = base_env(fresh_db_url, tmp_path)
    env.update(STREETAUDIT_BAIDU_AK=KEY, STREETAUDIT_COLLECT_PAGE="8", STREETAUDIT_COLLECT_BATCH="4")
    args = ["collect", "--provider", "baidu", "--no-progress", "--concurrency", "2"]
    with LocalProviders(key=KEY, latency=0.05) as server:
        env["STREETAUDIT_BAIDU_URL"] = f"{server.url}/panorama/v2"
        workers = [start(args, env) for _ in range(3)]
        deadline = time.monotonic() + 120
        ok = "SELECT count(*) FROM streetaudit.image WHERE status = 'ok'"
        while count(fresh_db_url, ok) < 24:
            assert all(w.poll() is None for w in workers), workers[0].stdout.read().decode()
            assert time.monotonic() < deadline, "nothing stored in 120 s"
            time.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        assert count(fresh_db_url, ok) < n_points * len(HEADINGS) * 0.8, "the kill came too late"
        outputs = [w.communicate(timeout=180)[0].decode() for w in workers[1:]]
        assert [w.returncode for w in workers[1:]] == [0, 0], outputs
        hits = Counter((r.query["location"], r.query["heading"]) for r in server.hits)

    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute("SELECT point_id, heading, status FROM streetaudit.image").fetchall()
        leases = conn.execute("SELECT count(*) FROM streetaudit.work_lease").fetchone()[0]
    assert len(rows) == n_points * len(HEADINGS) == len({(p, h) for p, h, _ in rows})
    assert {s for _, _, s in rows} == {"ok"} and leases == 0
    # Every view was asked for; twice only if the killed worker had it in flight (its 2
    # fetchers, its unwritten batch of 4, and the rest of its leased page of 8 points).
    assert len(hits) == len(rows)
    twice = [view for view, n in hits.items() if n > 1]
    assert len(twice) <= 8 * len(HEADINGS), twice
    # Both survivors worked: the stage was shared, not done by one while the other waited.
    fetched = [int(re.search(r"baidu: (\d+) ok", out).group(1)) for out in outputs]
    assert all(n > 0 for n in fetched), outputs


def test_segment_processes_share_the_images_without_overlap(fresh_db_url, tmp_path, monkeypatch):
    make_points(fresh_db_url, along((126.62, 45.76), 0.0003, 30), spacing=25.0)
    env = base_env(fresh_db_url, tmp_path)
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", env["STREETAUDIT_DATA_DIR"])
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    monkeypatch.delenv("STREETAUDIT_IMAGE_STORE", raising=False)
    assert collect(fresh_db_url, "synthetic", headings=(0, 180), size=(96, 48), progress=False).ok == 60
    env["STREETAUDIT_LEASE_BATCH"] = "4"
    args = ["segment", "--backend", "masks", "--device", "cpu", "--workers", "0", "--batch-size", "2"]
    # `--processes 2`: the command starts two workers itself (prefixing their lines [1], [2]).
    runner = start([*args, "--processes", "2"], env)
    output = runner.communicate(timeout=180)[0].decode()
    assert runner.returncode == 0, output
    done = [int(n) for n in re.findall(r"^\[[12]\] .*?(\d+) segmented", output, flags=re.M)]
    assert len(done) == 2, output
    rows = count(fresh_db_url, "SELECT count(*) FROM streetaudit.segmentation")
    # Each image segmented by exactly one process: the counts add up to the rows, no more.
    assert rows == 60 and sum(done) == 60, (done, output)
    assert count(fresh_db_url, "SELECT count(*) FROM streetaudit.work_lease") == 0


def synthetic_images(url: str, tmp_path, monkeypatch, env: dict[str, str], n_points: int) -> int:
    """`ok` images of the synthetic provider (two headings a point), stored under env's data dir."""
    make_points(url, along((126.62, 45.76), 0.0003, n_points), spacing=25.0)
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", env["STREETAUDIT_DATA_DIR"])
    monkeypatch.delenv("STREETAUDIT_IMAGES_URL", raising=False)
    monkeypatch.delenv("STREETAUDIT_IMAGE_STORE", raising=False)
    return collect(url, "synthetic", headings=(0, 180), size=(96, 48), progress=False).ok


def random_detector(path) -> str:
    """A random-weight tiny Faster R-CNN sized for the synthetic images: the stage, not the
    detector, is under test."""
    torch.manual_seed(0)
    detector = build_detector("fasterrcnn_tiny", ["window"], options={"min_size": 48, "max_size": 96})
    return str(save_detector(path, detector))


def leases_of(url: str, pid: int) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM streetaudit.work_lease WHERE worker LIKE %s", (f"%-{pid}-%",)
        ).fetchone()[0]


def wait_for(condition, what: str, workers: list[subprocess.Popen], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        for w in workers:
            assert w.poll() is None, f"a worker ended before {what}: " + w.stdout.read().decode()
        assert time.monotonic() < deadline, f"not {what} in {seconds:.0f} s"
        time.sleep(0.02)


def test_predict_worker_killed_mid_run_its_batch_is_taken_over_after_expiry(
    fresh_db_url, tmp_path, monkeypatch
):
    env = base_env(fresh_db_url, tmp_path)
    n_images = synthetic_images(fresh_db_url, tmp_path, monkeypatch, env, 30)
    env["STREETAUDIT_LEASE_BATCH"] = "4"
    args = ["detect", "predict", "--model", random_detector(tmp_path / "random.pt"), "--device", "cpu"]
    args += ["--workers", "0", "--batch-size", "2", "--no-progress"]
    done = "SELECT count(*) FROM streetaudit.detection_done"
    # The doomed worker stores a batch and leases the next; then it is frozen holding them.
    doomed = start(args, env)
    wait_for(lambda: count(fresh_db_url, done) > 0 and leases_of(fresh_db_url, doomed.pid) > 0,
             "a batch stored", [doomed])  # fmt: skip
    doomed.send_signal(signal.SIGSTOP)
    time.sleep(0.3)  # a commit in flight lands
    done_by_doomed = count(fresh_db_url, done)
    assert done_by_doomed < n_images, "the doomed worker finished before it was stopped"
    # Two more workers start while it lives (so neither frees its leases at start, as a dead
    # local worker's): to them it is a worker gone silent on another machine. Its leases are
    # taken over once they expire; then it is killed.
    runner = start([*args, "--processes", "2"], env)
    wait_for(lambda: leases_of(fresh_db_url, doomed.pid) == 0, "its batch taken over", [runner])
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    output = runner.communicate(timeout=180)[0].decode()
    assert runner.returncode == 0, output
    survivors = [int(n) for n in re.findall(r"^\[[12]\] .* on cpu: (\d+) images", output, flags=re.M)]
    assert len(survivors) == 2, output

    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            """SELECT d.image_id, d.n, (SELECT count(*) FROM streetaudit.detection AS x
                                         WHERE x.image_id = d.image_id AND x.model_id = d.model_id)
               FROM streetaudit.detection_done AS d"""
        ).fetchall()
        images = conn.execute("SELECT count(*) FROM streetaudit.image WHERE status = 'ok'").fetchone()[0]
        leases = conn.execute("SELECT count(*) FROM streetaudit.work_lease").fetchone()[0]
    # Every image once, each with exactly the boxes its row counts (no batch stored twice) ...
    assert len(rows) == images == n_images and leases == 0
    assert all(n == boxes for _, n, boxes in rows)
    # ... and predicted once: the survivors did exactly what the killed worker had not stored.
    assert sum(survivors) + done_by_doomed == n_images, (survivors, done_by_doomed, output)


def test_explain_processes_share_the_images_without_overlap(fresh_db_url, tmp_path, monkeypatch):
    env = base_env(fresh_db_url, tmp_path)
    n_images = synthetic_images(fresh_db_url, tmp_path, monkeypatch, env, 8)
    env["STREETAUDIT_LEASE_EXPLAIN_BATCH"] = "2"
    args = ["explain", "--model", random_detector(tmp_path / "random.pt"), "--device", "cpu"]
    runner = start([*args, "--method", "eigencam", "--processes", "2"], env)
    output = runner.communicate(timeout=180)[0].decode()
    assert runner.returncode == 0, output
    done = [int(n) for n in re.findall(r"^\[[12]\] .*?: (\d+) heat maps", output, flags=re.M)]
    assert len(done) == 2, output
    rows = count(fresh_db_url, "SELECT count(*) FROM streetaudit.heatmap")
    assert rows == n_images and sum(done) == n_images, (done, output)
    assert count(fresh_db_url, "SELECT count(*) FROM streetaudit.work_lease") == 0
