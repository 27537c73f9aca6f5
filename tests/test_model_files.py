"""Damaged model files: each is refused in one line naming the file and the reason, nothing written.

The files are made here: a tiny random-weight SegFormer saved with save_pretrained() and a
torchvision state dict saved with torch.save(), then emptied, truncated or overwritten.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
import torch

from streetaudit.testing.tiny_models import tiny_segformer


@pytest.fixture(scope="module")
def segformer_dir(tmp_path_factory) -> Path:
    return tiny_segformer(tmp_path_factory.mktemp("segformer"))


@pytest.fixture(scope="module")
def state_dict_file(tmp_path_factory) -> Path:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(1)
    network = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19)
    path = tmp_path_factory.mktemp("tv") / "lraspp.pth"
    torch.save({"model": network.state_dict()}, path)
    return path


def model_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM streetaudit.model").fetchone()[0]


def assert_one_line_error(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), result.output
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment in text, (fragment, result.output)


def copy_of(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


def test_an_empty_model_folder_is_named(cli, db_url, tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    result = cli("segment", "--model", empty, "--device", "cpu")
    assert_one_line_error(result, str(empty), "the folder is empty")
    assert model_rows(db_url) == 0


@pytest.mark.parametrize("keep", [0.5, 0.01, 0.0])
def test_truncated_safetensors_name_the_weights_file(cli, db_url, segformer_dir, tmp_path, keep):
    folder = copy_of(segformer_dir, tmp_path / "truncated")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])
    result = cli("segment", "--model", folder, "--device", "cpu")
    reason = "empty" if keep == 0 else "truncated or corrupt safetensors file"
    assert_one_line_error(result, str(weights), reason)
    assert model_rows(db_url) == 0


def test_a_folder_without_config_or_weights_is_named(cli, db_url, segformer_dir, tmp_path):
    folder = copy_of(segformer_dir, tmp_path / "no-config")
    (folder / "config.json").unlink()
    assert_one_line_error(cli("segment", "--model", folder, "--device", "cpu"), str(folder), "no config.json")
    folder = copy_of(segformer_dir, tmp_path / "no-weights")
    (folder / "model.safetensors").unlink()
    assert_one_line_error(
        cli("segment", "--model", folder, "--device", "cpu"), str(folder), "no weights file"
    )
    assert model_rows(db_url) == 0


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "cannot read the checkpoint"),
        ("garbage", "not a PyTorch file"),
        ("empty", "empty (0 bytes)"),
    ],
)
def test_a_corrupt_pth_is_named(cli, db_url, state_dict_file, tmp_path, damage, reason):
    bad = tmp_path / "bad.pth"
    data = state_dict_file.read_bytes()
    bad.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x80\x05not a pickle" * 50, "empty": b""}[damage]
    )
    result = cli(
        "segment",
        "--backend",
        "torchvision",
        "--model",
        bad,
        "--arch",
        "lraspp_mobilenet_v3_large",
        "--device",
        "cpu",
    )
    assert_one_line_error(result, str(bad), reason)
    assert model_rows(db_url) == 0


def test_the_intact_files_still_load(segformer_dir, state_dict_file):
    """The checks refuse only damage: the same files, intact, make working backends."""
    from streetaudit.models.backend import create_backend

    device = torch.device("cpu")
    assert create_backend("hf", str(segformer_dir), device).label_set.key == "cityscapes"
    backend = create_backend("torchvision", str(state_dict_file), device, arch="lraspp_mobilenet_v3_large")
    assert len(backend.label_set) == 19
