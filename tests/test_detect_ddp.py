"""`detect train` under torchrun: two CPU processes (gloo) train one run, rank 0 alone records it.

The subprocess has a timeout, and the process group one of its own, so a rank left waiting on
the other fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from streetaudit.testing.detection_data import seed_detection_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def windows(db_url, tmp_path_factory):
    return seed_detection_dataset(db_url, tmp_path_factory.mktemp("images"), n=24, test=0.25, val=0.15)


def test_torchrun_two_ranks_train_one_run_recorded_once(db_url, windows, tmp_path):
    env = {
        **os.environ,
        "STREETAUDIT_DATABASE_URL": db_url,
        "STREETAUDIT_DATA_DIR": str(tmp_path / "data"),
        "OMP_NUM_THREADS": "1",
        "STREETAUDIT_DIST_TIMEOUT": "60",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "streetaudit.cli.main", "detect", "train",
        "--name", "ddp", "--dataset", windows.dataset, "--architecture", "fasterrcnn_tiny",
        "--weights", "none", "--epochs", "2", "--batch-size", "2", "--step-size", "1",
        "--min-size", "64", "--max-size", "96", "--device", "cpu", "--workers", "0",
        "--out-dir", str(tmp_path / "runs"), "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("run ddp (fasterrcnn_tiny): 2 epochs") == 1  # rank 0 reports, alone
    with psycopg.connect(db_url) as conn:
        run = conn.execute(
            """SELECT status, epochs_done, (parameters->>'world_size')::int, model_id, weights_uri
               FROM streetaudit.detector_run WHERE name = 'ddp'"""
        ).fetchone()
        epochs = conn.execute(
            """SELECT e.epoch FROM streetaudit.detector_epoch AS e
               JOIN streetaudit.detector_run AS r ON r.id = e.run_id WHERE r.name = 'ddp' ORDER BY 1"""
        ).fetchall()
        models = conn.execute("SELECT count(*) FROM streetaudit.model WHERE name = 'ddp'").fetchone()[0]
    status, epochs_done, world, model_id, weights_uri = run
    assert (status, epochs_done, world) == ("finished", 2, 2)
    assert [e for (e,) in epochs] == [1, 2] and models == 1 and model_id is not None
    assert os.path.isfile(weights_uri)
