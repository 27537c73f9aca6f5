"""Talking to the Hugging Face Hub at most once: is it there, is a checkpoint cached, fetch one.

huggingface_hub retries a refused connection five times with backoff (about 30 s) before
transformers falls back to the cache or fails. One short probe of the endpoint decides
instead: unreachable means cache only (`local_files_only`), so a cached checkpoint loads at
once and a missing one fails at once with instructions.
"""

from __future__ import annotations

import functools
from pathlib import Path

from streetaudit.models.backend import WeightsUnavailable

PROBE_TIMEOUT_S = 3.0
# What a checkpoint folder needs: config, processor config, weights (safetensors, else the .bin).
CHECKPOINT_FILES = ("*.json", "*.safetensors", "pytorch_model.bin", "*.txt", "*.model")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline_mode() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


@functools.lru_cache(maxsize=8)
def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when anything answers at `url` (even an error status): the network is there."""
    import httpx

    try:
        httpx.head(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError:
        return False
    return True


def hub_unavailable_reason() -> str | None:
    """Why the hub cannot be asked now (offline mode, no answer), or None when it can."""
    if offline_mode():
        return "HF_HUB_OFFLINE=1"
    if not reachable(endpoint()):
        return f"no answer from {endpoint()} within {PROBE_TIMEOUT_S:g} s"
    return None


def cached_snapshot(repo_id: str, cache_dir: str | None = None, revision: str | None = None) -> Path | None:
    """The cached checkpoint folder of `repo_id` (one with its config.json), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def download(repo_id: str, cache_dir: str | None = None, revision: str | None = None) -> Path:
    """Fetch the checkpoint's files into the cache (resumes; cached files are not fetched again)."""
    reason = hub_unavailable_reason()
    if reason is not None:
        cached = cached_snapshot(repo_id, cache_dir, revision)
        if cached is not None:
            return cached
        raise WeightsUnavailable(
            f"cannot download {repo_id} ({reason}); run this where there is network, with the same "
            "HF_HOME (or copy that cache here), or save a checkpoint with save_pretrained() and "
            "pass its folder as --model PATH"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        folder = snapshot_download(
            repo_id,
            cache_dir=cache_dir,
            revision=revision,
            allow_patterns=list(CHECKPOINT_FILES),
            endpoint=endpoint(),
        )
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise WeightsUnavailable(f"{repo_id}: no such model (or revision) on {endpoint()}") from error
    except (HfHubHTTPError, OSError) as error:
        raise WeightsUnavailable(f"cannot download {repo_id}: {str(error).splitlines()[0]}") from error
    return Path(folder)
