"""Finding weights: a local checkpoint, or a hub id / URL fetched once into a cache.

Hub checkpoints live in the Hugging Face cache (`HF_HOME`, default ~/.cache/huggingface,
or `cache_dir`); URL checkpoints in torch's hub cache (`TORCH_HOME`). Offline, a missing
download is an error that says how to fetch the weights, never a stack of HTTP retries.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from streetaudit.models.backend import BackendError, WeightsUnavailable

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.pt", "*.pth")


def checkpoint_dir(model: str) -> Path | None:
    """The local checkpoint folder `model` names, or None when it is a hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if model.startswith(("/", ".", "~")):
        raise BackendError(f"--model {model}: no checkpoint folder there")
    return None


def check_checkpoint_dir(folder: Path) -> None:
    """Refuse an empty folder or damaged weights by name, before transformers reads them.

    transformers reports these as a ValueError about `model_type` or a bare SafetensorError
    that names no file; the user needs to know which file is wrong.
    """
    if not any(folder.iterdir()):
        raise BackendError(
            f"--model {folder}: the folder is empty (save a checkpoint there with save_pretrained())"
        )
    if not (folder / "config.json").is_file():
        raise BackendError(
            f"--model {folder}: no config.json, so not a Hugging Face checkpoint folder "
            "(save one with save_pretrained())"
        )
    weights = sorted(p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern))
    if not weights:
        raise BackendError(
            f"--model {folder}: no weights file (model.safetensors or pytorch_model.bin) in the folder"
        )
    for path in weights:
        if path.suffix == ".safetensors":
            check_safetensors(path)


def check_safetensors(path: Path) -> None:
    """Reads the header only: a truncated file no longer covers the tensors it declares."""
    from safetensors import SafetensorError, safe_open

    if path.stat().st_size == 0:
        raise BackendError(f"--model {path}: the weights file is empty (0 bytes)")
    try:
        with safe_open(str(path), framework="pt") as weights:
            weights.keys()
    except (SafetensorError, OSError) as error:
        raise BackendError(
            f"--model {path}: truncated or corrupt safetensors file ({first_line(error)})"
        ) from None


def first_line(error: BaseException) -> str:
    """The part of a library's message that says what is wrong, on one line."""
    text = str(error).strip()
    if "WeightsUnpickler error:" in text:  # torch's long weights_only preamble; the cause follows it
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.split(". ")[0].rstrip(".") or type(error).__name__


def hub_instructions(model_id: str, reason: str | None = None) -> str:
    from streetaudit.models.registry import find

    listed = find(model_id)
    name = listed.name if listed else model_id
    why = reason or f"offline: HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}"
    return (
        f"weights for {model_id!r} are not in the Hugging Face cache and cannot be downloaded now "
        f"({why}). Fetch them once where there is network: `streetaudit models download {name}` "
        f"(or `hf download {model_id}`), with the same HF_HOME, or copy that cache here; or save a "
        "checkpoint with save_pretrained() and pass its folder as --model PATH."
    )


def load_hf(loader, model: str, *, cache_dir: str | None = None, revision: str | None = None, **kwargs):
    """`loader.from_pretrained` for a folder or hub id, turning cache misses into instructions."""
    folder = checkpoint_dir(model)
    if folder is not None:
        check_checkpoint_dir(folder)
    target = str(folder) if folder else model
    reason = None
    if folder is None:
        from streetaudit.models.hub import hub_unavailable_reason

        # Without the hub, the cache only: no retries against a network that is not there.
        reason = hub_unavailable_reason()
        if reason is not None:
            kwargs["local_files_only"] = True
    try:
        return loader.from_pretrained(target, cache_dir=cache_dir, revision=revision, **kwargs)
    except OSError as error:
        if folder is not None:
            raise BackendError(
                f"--model {folder}: not a usable checkpoint folder ({first_line(error)})"
            ) from error
        raise WeightsUnavailable(hub_instructions(model, reason)) from error
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        # pytorch_model.bin read by torch.load: truncated zip, garbage pickle
        where = folder or model
        raise BackendError(f"--model {where}: cannot read the weights ({first_line(error)})") from error


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
        if path.stat().st_size == 0:
            raise BackendError(f"--model {checkpoint}: the checkpoint file is empty (0 bytes)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
            raise BackendError(
                f"--model {checkpoint}: cannot read the checkpoint, truncated or not a PyTorch file "
                f"({first_line(error)})"
            ) from error
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise BackendError(f"--model {checkpoint}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}
