"""Finding weights: a local checkpoint, or a hub id / URL fetched once into a cache.

Hub checkpoints live in the Hugging Face cache (`HF_HOME`, default ~/.cache/huggingface,
or `cache_dir`); URL checkpoints in torch's hub cache (`TORCH_HOME`). Offline, a missing
download is an error that says how to fetch the weights, never a stack of HTTP retries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from streetaudit.models.backend import BackendError, WeightsUnavailable


def checkpoint_dir(model: str) -> Path | None:
    """The local checkpoint folder `model` names, or None when it is a hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if model.startswith(("/", ".", "~")):
        raise BackendError(f"--model {model}: no checkpoint folder there")
    return None


def hub_instructions(model_id: str) -> str:
    return (
        f"weights for {model_id!r} are not in the Hugging Face cache and cannot be downloaded now "
        f"(offline: HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}). Fetch them once on a machine "
        f"with network: `hf download {model_id}` (or `huggingface-cli download {model_id}`), with the same "
        "HF_HOME, or copy that cache here; or save a checkpoint with save_pretrained() and pass its "
        "folder as --model PATH."
    )


def load_hf(loader, model: str, *, cache_dir: str | None = None, revision: str | None = None, **kwargs):
    """`loader.from_pretrained` for a folder or hub id, turning cache misses into instructions."""
    folder = checkpoint_dir(model)
    target = str(folder) if folder else model
    try:
        return loader.from_pretrained(target, cache_dir=cache_dir, revision=revision, **kwargs)
    except OSError as error:
        if folder is not None:
            raise BackendError(f"--model {folder}: not a usable checkpoint folder ({error})") from error
        raise WeightsUnavailable(hub_instructions(model)) from error


def load_state_dict(checkpoint: str) -> dict[str, torch.Tensor]:
    """A state dict from a file or URL (cached), unwrapping training checkpoints.

    torchvision's reference scripts save {"model": ..., "optimizer": ...}; mmseg-style and
    Lightning files use "state_dict"; DataParallel prefixes keys with "module.".
    """
    if checkpoint.startswith(("http://", "https://")):
        try:
            state: Any = torch.hub.load_state_dict_from_url(checkpoint, map_location="cpu", weights_only=True)
        except OSError as error:
            raise WeightsUnavailable(
                f"cannot download {checkpoint} ({error}); download it where there is network and pass "
                "the file as --model PATH, or put it in torch's hub cache (TORCH_HOME)"
            ) from error
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise BackendError(f"--model {checkpoint}: no checkpoint file there")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError) as error:
            raise BackendError(f"--model {checkpoint}: cannot read the checkpoint ({error})") from error
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise BackendError(f"--model {checkpoint}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}
