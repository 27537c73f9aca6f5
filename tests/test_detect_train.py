"""Training a tiny detector on the seeded facades: it learns, it resumes, it records every epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
import torch

from streetaudit.flows.detect_evaluate import compare, evaluate, runs
from streetaudit.flows.detect_train import train
from streetaudit.flows.errors import InputError
from streetaudit.models.detectors import build_detector, read_detector_file, save_detector
from streetaudit.testing.detection_data import seed_detection_dataset

TINY = {
    "architecture": "fasterrcnn_tiny",
    "weights": "none",
    "batch_size": 4,
    "min_size": 96,
    "max_size": 128,
    "device": "cpu",
    "progress": False,
}
TRAINED_EPOCHS = 8


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    """The tests share two cores with other work: more threads only thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def windows(db_url, tmp_path_factory):
    return seed_detection_dataset(db_url, tmp_path_factory.mktemp("images"), n=64, test=0.25, val=0.15)


@pytest.fixture(scope="module")
def trained(db_url, windows, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    epochs_seen = []
    report = train(
        db_url,
        "tiny-windows",
        windows.dataset,
        epochs=TRAINED_EPOCHS,
        lr=0.02,
        step_size=6,
        out_dir=str(out),
        on_epoch=epochs_seen.append,
        **TINY,
    )
    return report, epochs_seen, out


def test_training_beats_the_untrained_detector_by_a_margin(db_url, windows, trained, tmp_path):
    report, _, _ = trained
    torch.manual_seed(0)
    untrained = build_detector("fasterrcnn_tiny", ["window"], options={"min_size": 96, "max_size": 128})
    untrained_file = save_detector(tmp_path / "untrained.pt", untrained)
    before = evaluate(db_url, str(untrained_file), windows.dataset, device="cpu")
    after = evaluate(db_url, "tiny-windows", windows.dataset, device="cpu")
    assert after.model_id == report.model_id and after.images == len(windows.ids("test"))
    assert after.map50 > before.map50 + 0.15, (before, after)
    assert after.map > before.map
    assert after.per_class["window"] == pytest.approx(after.map)
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT map, map50, images FROM streetaudit.detector_evaluation WHERE id = %s",
            (after.evaluation_id,),
        ).fetchone()
    assert stored == pytest.approx((after.map, after.map50, after.images))
    table = compare(db_url, windows.dataset)
    assert [row["model"].split(" (")[0] for row in table] == ["tiny-windows", "untrained"]
    assert table[0]["epochs"] == TRAINED_EPOCHS and table[1]["epochs"] is None
    assert table[0]["images_per_s"] > 0


def test_every_epoch_is_stored_and_the_run_registers_its_detector(db_url, windows, trained):
    report, epochs_seen, _ = trained
    assert report.status == "finished" and report.epochs == TRAINED_EPOCHS
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """SELECT epoch, train_loss, val_map, val_map50, learning_rate, seconds
                 FROM streetaudit.detector_epoch WHERE run_id = %s ORDER BY epoch""",
            (report.run_id,),
        ).fetchall()
        run = conn.execute(
            """SELECT r.status, r.epochs_done, r.model_id, r.weights_uri, r.finished_at IS NOT NULL,
                      m.task, m.name, m.labels
                 FROM streetaudit.detector_run r JOIN streetaudit.model m ON m.id = r.model_id
                WHERE r.id = %s""",
            (report.run_id,),
        ).fetchone()
    assert [r[0] for r in rows] == list(range(1, TRAINED_EPOCHS + 1))
    assert [r[0] for r in rows] == [e["epoch"] for e in epochs_seen]
    assert all(r[1] > 0 and 0 <= r[2] <= 1 and 0 <= r[3] <= 1 and r[5] > 0 for r in rows)
    # the study's schedule: constant lr until the step, then ×gamma
    assert [r[4] for r in rows] == pytest.approx([0.02] * 6 + [0.002] * 2)
    assert rows[-1][1] < rows[0][1]  # the loss went down
    assert run == (
        "finished",
        TRAINED_EPOCHS,
        report.model_id,
        report.detector,
        True,
        "detection",
        "tiny-windows",
        ["window"],
    )
    payload = read_detector_file(report.detector)
    assert payload["architecture"] == "fasterrcnn_tiny" and payload["epochs"] == TRAINED_EPOCHS
    figure = Path(report.figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 5000
    assert runs(db_url)[0]["val_map50"] == pytest.approx(rows[-1][3])


def test_a_run_name_is_never_reused_without_resume(db_url, windows, trained):
    with pytest.raises(
        InputError, match=r"--name tiny-windows: a run of that name exists \(finished, 8 epochs"
    ):
        train(db_url, "tiny-windows", windows.dataset, epochs=1, **TINY)


def test_bad_input_is_named(db_url, windows):
    with pytest.raises(InputError, match="--architecture yolo"):
        train(db_url, "bad", windows.dataset, **{**TINY, "architecture": "yolo"})
    with pytest.raises(InputError, match="--dataset missing: no such dataset"):
        train(db_url, "bad", "missing", **TINY)
    with pytest.raises(InputError, match="--lr 0"):
        train(db_url, "bad", windows.dataset, **{**TINY, "lr": 0})


@pytest.fixture(scope="module")
def small(db_url, tmp_path_factory):
    return seed_detection_dataset(
        db_url, tmp_path_factory.mktemp("small"), n=12, name="small", test=0.2, val=0.2, seed=7
    )


def _state(report) -> dict:
    return torch.load(report.detector, weights_only=True)["state_dict"]


def test_resume_after_a_stop_ends_like_an_uninterrupted_run(db_url, small, tmp_path):
    whole = train(db_url, "whole", small.dataset, epochs=3, out_dir=str(tmp_path), **TINY)

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            db_url,
            "halves",
            small.dataset,
            epochs=3,
            out_dir=str(tmp_path),
            on_epoch=stop_after_first,
            **TINY,
        )
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT status, epochs_done, detail FROM streetaudit.detector_run WHERE name = 'halves'"
        ).fetchone() == ("stopped", 1, "interrupted; continue with --resume")
    resumed = train(db_url, "halves", small.dataset, out_dir=str(tmp_path), resume=True, **TINY)
    assert (resumed.resumed_from, resumed.epochs, resumed.status) == (1, 3, "finished")
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    # model, optimizer, scheduler, RNG and batch order restored: the very same weights
    a, b = _state(whole), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in whole.history]
    )


def test_resume_after_a_kill_gives_the_same_epoch_count(db_url, small, tmp_path):
    script = textwrap.dedent(
        f"""
        import torch
        torch.set_num_threads(1)
        from streetaudit.flows.detect_train import train
        train({db_url!r}, "killed", {small.dataset!r}, epochs=6, out_dir={str(tmp_path)!r}, **{TINY!r})
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while done < 1 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
            with psycopg.connect(db_url) as conn:
                row = conn.execute(
                    "SELECT epochs_done FROM streetaudit.detector_run WHERE name = 'killed'"
                ).fetchone()
            done = row[0] if row else 0
        assert child.poll() is None, "the run ended before it could be killed"
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    with psycopg.connect(db_url) as conn:
        status, killed_at = conn.execute(
            "SELECT status, epochs_done FROM streetaudit.detector_run WHERE name = 'killed'"
        ).fetchone()
    assert status == "running" and 1 <= killed_at < 6  # nobody closed the run: it was killed
    resumed = train(db_url, "killed", small.dataset, out_dir=str(tmp_path), resume=True, **TINY)
    assert resumed.resumed_from >= killed_at and resumed.epochs == 6
    with psycopg.connect(db_url) as conn:
        epochs = [
            r[0]
            for r in conn.execute(
                """SELECT epoch FROM streetaudit.detector_epoch e JOIN streetaudit.detector_run r ON r.id = e.run_id
                WHERE r.name = 'killed' ORDER BY epoch"""
            )
        ]
        assert conn.execute(
            "SELECT status FROM streetaudit.detector_run WHERE name = 'killed'"
        ).fetchone() == ("finished",)
    assert epochs == [1, 2, 3, 4, 5, 6]
    assert not list(tmp_path.glob("killed/.*partial"))
