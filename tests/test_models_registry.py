"""`streetaudit models list|download` and loading hub checkpoints without a network.

The hub is "not there" as on an offline machine: its endpoint is a closed port on 127.0.0.1.
A cache is a real Hugging Face cache folder holding a tiny random-weight SegFormer.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from streetaudit.cli.main import app
from streetaudit.models import hub
from streetaudit.models.registry import CHECKPOINTS, DEFAULT_CHECKPOINT, find
from streetaudit.testing.tiny_models import tiny_segformer

# The sizes of the datasets' label sets as published (Cityscapes train ids, ADE20K SceneParsing,
# Mapillary Vistas v1.2 without "unlabeled").
PUBLISHED_CLASSES = {"cityscapes": 19, "ade20k": 150, "mapillary-vistas": 65}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
B2 = "nvidia/segformer-b2-finetuned-cityscapes-1024-1024"


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> str:
    """Offline mode off, and nothing listening where the hub should be."""
    from huggingface_hub import constants

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    hub.reachable.cache_clear()
    yield url
    hub.reachable.cache_clear()


def hub_cache(root: Path, repo_id: str) -> Path:
    """`repo_id` cached as huggingface_hub lays it out: refs/main names the snapshot."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    tiny_segformer(repo / "snapshots" / COMMIT)
    return root


def test_models_list_shows_every_checkpoint_with_its_label_set_and_what_is_cached(
    tmp_path, monkeypatch
) -> None:
    cache = hub_cache(tmp_path / "hub", B2)
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line
    result = CliRunner().invoke(app, ["models", "list", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(" *"): [c.strip() for c in line.split("│")[1:-1]]
            for line in result.output.splitlines() if line.count("│") > 4}  # fmt: skip
    assert set(rows) == {c.name for c in CHECKPOINTS} and f"{DEFAULT_CHECKPOINT} *" in result.output
    for c in CHECKPOINTS:
        _, backend, label_set, classes, repo_id, cached, _note = rows[c.name]
        assert (backend, label_set) == (c.backend, c.label_set)
        assert int(classes) == PUBLISHED_CLASSES[c.label_set]
        assert repo_id == (c.repo_id or "(your .pth file)")
        assert cached == ("yes" if c.repo_id == B2 else "no" if c.repo_id else "–"), c.name
    wanted = {"segformer-b0-cityscapes", "segformer-b5-cityscapes", "mask2former-swin-large-cityscapes"}
    assert wanted | {"upernet-convnext-small-ade20k", "deeplabv3-resnet50-cityscapes"} <= set(rows)
    assert find(B2).name == "segformer-b2-cityscapes"


def test_without_network_the_default_model_fails_at_once_saying_how_to_get_it(no_hub, tmp_path) -> None:
    from streetaudit.models.backend import WeightsUnavailable
    from streetaudit.models.hf_segmentation import HFBackend

    started = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as caught:
        HFBackend(None, torch.device("cpu"), cache_dir=str(tmp_path / "empty"))
    assert time.perf_counter() - started < 8  # huggingface_hub's own retries take ~30 s
    message = str(caught.value)
    assert "streetaudit models download segformer-b0-cityscapes" in message and "--model PATH" in message
    assert f"no answer from {no_hub}" in message


def test_without_network_a_cached_checkpoint_loads_from_the_cache(no_hub, tmp_path) -> None:
    from streetaudit.models.hf_segmentation import HFBackend

    cache = hub_cache(tmp_path / "hub", B2)
    backend = HFBackend(B2, torch.device("cpu"), cache_dir=str(cache))
    assert backend.source == B2 and backend.label_set.name == "cityscapes"
    maps = backend.predict(torch.zeros(1, 3, 32, 64, dtype=torch.uint8))
    assert maps.shape == (1, 32, 64)


def test_models_download_refuses_what_it_cannot_fetch_in_one_line(no_hub, tmp_path) -> None:
    runner = CliRunner()
    cache = str(tmp_path / "empty")
    result = runner.invoke(app, ["models", "download", "segformer-b9", "--cache-dir", cache])
    assert result.exit_code == 2 and "not a listed model" in result.output
    result = runner.invoke(app, ["models", "download", "deeplabv3-resnet50-cityscapes"])
    assert result.exit_code == 2 and "no public weights" in result.output
    started = time.perf_counter()
    result = runner.invoke(app, ["models", "download", "segformer-b0-cityscapes", "--cache-dir", cache])
    assert time.perf_counter() - started < 8
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"cannot download nvidia/segformer-b0-finetuned-cityscapes-1024-1024 (no answer from {no_hub}" in (
        " ".join(result.output.split())
    )
    # Already cached: offline, download has nothing to do and says where it is.
    cached = hub_cache(tmp_path / "hub", B2)
    result = runner.invoke(app, ["models", "download", "segformer-b2-cityscapes", "--cache-dir", str(cached)])
    assert result.exit_code == 0, result.output
    snapshot = cached / ("models--" + B2.replace("/", "--")) / "snapshots" / COMMIT
    assert f"{B2} is in {snapshot}" in result.output


def test_models_download_fetches_a_checkpoint_from_the_hub_api_into_the_cache(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    from streetaudit.models.hf_segmentation import HFBackend
    from streetaudit.testing.hub_server import COMMIT as SERVED
    from streetaudit.testing.hub_server import serving_repo

    repo_id = "nvidia/segformer-b1-finetuned-cityscapes-1024-1024"
    source = tiny_segformer(tmp_path / "published")
    (source / "tf_model.h5").write_bytes(b"TensorFlow weights: not needed")
    cache = tmp_path / "cache"
    runner = CliRunner()
    with serving_repo(repo_id, source) as (url, requested):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        hub.reachable.cache_clear()
        result = runner.invoke(
            app, ["models", "download", "segformer-b1-cityscapes", "--cache-dir", str(cache)]
        )
        assert result.exit_code == 0, result.output
        fetched = [r for r in requested if r.startswith("GET ") and "/resolve/" in r]
        again = runner.invoke(
            app, ["models", "download", "segformer-b1-cityscapes", "--cache-dir", str(cache)]
        )
        assert again.exit_code == 0, again.output
        refetched = [r for r in requested if r.startswith("GET ") and "/resolve/" in r]
    hub.reachable.cache_clear()
    snapshot = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / SERVED
    wanted = {"config.json", "preprocessor_config.json", "model.safetensors"}
    assert {p.name for p in snapshot.iterdir()} == wanted  # not the TensorFlow file
    for name in wanted:
        assert (snapshot / name).read_bytes() == (source / name).read_bytes(), name
    assert len(fetched) == 3 and refetched == fetched  # cached files are not fetched again
    assert f"{repo_id} is in {snapshot}" in result.output
    # Now without the hub: the listing says cached, and the model loads from the cache.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("COLUMNS", "400")
    listing = runner.invoke(app, ["models", "list", "--cache-dir", str(cache)])
    (row,) = [line for line in listing.output.splitlines() if "segformer-b1-cityscapes" in line]
    assert "│ yes " in row
    backend = HFBackend(repo_id, torch.device("cpu"), cache_dir=str(cache))
    assert backend.label_set.name == "cityscapes"
