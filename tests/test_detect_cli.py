"""`streetaudit detect train / evaluate / compare / runs` end to end on a tiny seeded set."""

from __future__ import annotations

import torch

from streetaudit.testing.detection_data import seed_detection_dataset

TINY = ["--architecture", "fasterrcnn_tiny", "--weights", "none", "--batch-size", "4"]
TINY += ["--min-size", "96", "--max-size", "128", "--device", "cpu", "--no-progress"]


def test_train_evaluate_compare_and_runs(cli, db_url, tmp_path):
    torch.set_num_threads(2)
    seed_detection_dataset(db_url, tmp_path / "images", n=10, name="cli-set", seed=9)
    trained = cli("detect", "train", "--name", "cli-run", "--dataset", "cli-set", "--epochs", "2", *TINY)
    assert trained.exit_code == 0, trained.output
    assert "run cli-run (fasterrcnn_tiny): 2 epochs" in trained.output
    assert (tmp_path / "data" / "detectors" / "cli-run" / "cli-run.pt").is_file()
    again = cli("detect", "train", "--name", "cli-run", "--dataset", "cli-set", *TINY)
    assert again.exit_code == 2 and "pass --resume" in again.output
    evaluated = cli("detect", "evaluate", "--model", "cli-run", "--dataset", "cli-set", "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    assert "mAP@.5" in evaluated.output and "window: AP" in evaluated.output
    wide = {"COLUMNS": "200"}
    compared = cli("detect", "compare", "--dataset", "cli-set", env=wide)
    assert compared.exit_code == 0 and "cli-run" in compared.output and "fasterrcnn_tiny" in compared.output
    listed = cli("detect", "runs", env=wide)
    assert listed.exit_code == 0 and "finished" in listed.output and "2/2" in listed.output
    missing = cli("detect", "evaluate", "--model", "nope", "--dataset", "cli-set")
    assert missing.exit_code == 2 and "--model nope" in missing.output


def test_train_help_lists_architectures_and_defaults(cli):
    shown = cli("detect", "train", "--help", env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    for text in (
        "fasterrcnn_resnext101_32x8d_fpn",
        "fasterrcnn_resnet50_fpn_v2 (default)",
        "fasterrcnn_tiny",
        "0.01",
    ):
        assert text in shown.output
