"""Where collected images live: a local folder (default) or any fsspec URL.

A file is written under a temporary name and renamed into place, so a process killed at any
moment leaves either the whole file or none at the final path; the database row saying `ok`
is written only after that. Local temporaries go to `<root>/.tmp/<host>-<pid>/`; the next
run removes those of processes that no longer exist.

`image.uri` holds, for local storage, the absolute file path (no `file://`), and otherwise
the full fsspec URL; either opens with `fsspec.open(uri)`.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streetaudit.flows.errors import InputError


class ImageSettings(BaseSettings):
    """`STREETAUDIT_IMAGE_STORE` (a path or fsspec URL such as `s3://bucket/prefix`; the older
    name `STREETAUDIT_IMAGES_URL` still works) overrides the default `$STREETAUDIT_DATA_DIR/images`."""

    model_config = SettingsConfigDict(
        env_prefix="STREETAUDIT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Path(".streetaudit")
    images_url: str | None = Field(
        None, validation_alias=AliasChoices("STREETAUDIT_IMAGE_STORE", "STREETAUDIT_IMAGES_URL", "images_url")
    )

    @field_validator("images_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    def root(self) -> str:
        if self.images_url:
            return self.images_url
        return str(self.data_dir.expanduser().resolve() / "images")


# Object stores whose PUT is atomic (a reader sees the whole object or none, and a killed upload
# leaves nothing): there a temporary name and a rename would only add a copy and a delete.
ATOMIC_PUT_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


def view_key(provider: str, point_id: int, heading: float, extension: str) -> str:
    """Stable relative path of a view: a rerun writes the same view to the same place."""
    return f"{provider}/{point_id // 1000:05d}/{point_id}_{heading:g}.{extension}"


def sidecar_key(key: str, suffix: str) -> str:
    """`.../123_0.jpg` with suffix `.labels.png` -> `.../123_0.labels.png`."""
    return str(PurePosixPath(key).with_suffix(suffix))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _filesystem(root: str, setting: str) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem of `root`; an unknown scheme or a missing backend is the user's to fix."""
    scheme = root.split("://", 1)[0]
    try:
        fs, _ = fsspec.core.url_to_fs(root)
    except ImportError as error:
        raise InputError(
            f"{setting}: storing images at {scheme}:// needs an fsspec backend that is not installed "
            f"({error}); install it into this environment (e.g. pip install s3fs for s3://)"
        ) from None
    except ValueError as error:
        raise InputError(
            f"{setting}: unknown storage scheme {scheme!r} ({error}); use a folder path or an "
            "fsspec URL such as s3://bucket/images"
        ) from None
    return fs


def _setting_name() -> str:
    """The variable an error should name: the one the user set."""
    return "STREETAUDIT_IMAGES_URL" if os.environ.get("STREETAUDIT_IMAGES_URL") else "STREETAUDIT_IMAGE_STORE"


class ImageStore:
    def __init__(self, root: str | None = None):
        setting = "image store root" if root else _setting_name()
        root = root or ImageSettings().root()
        if root.startswith("file://"):
            root = root[len("file://") :]
        self.local = "://" not in root
        # fsspec's filesystem for a remote root; None for a folder, which os calls serve faster
        self.fs: Any = None
        if self.local:
            self.root = str(Path(root).expanduser().resolve())
        else:
            self.root = root.rstrip("/")
            self.fs = _filesystem(self.root, setting)
        self._tmp = f"{socket.gethostname()}-{os.getpid()}"
        self.atomic_put = not self.local and self.root.split("://", 1)[0] in ATOMIC_PUT_SCHEMES

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}" if not self.local else str(Path(self.root) / key)

    def put(self, key: str, data: bytes) -> str:
        """Write all of `data`, then rename into place; returns the URI."""
        final = self.uri(key)
        if self.local:
            tmp_dir = Path(self.root) / ".tmp" / self._tmp
            tmp_dir.mkdir(parents=True, exist_ok=True)
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            tmp = tmp_dir / uuid.uuid4().hex
            tmp.write_bytes(data)
            os.replace(tmp, final)
        elif self.atomic_put:
            self.fs.pipe_file(final, data)
        else:
            partial = f"{final}.tmp-{uuid.uuid4().hex}"
            self.fs.pipe_file(partial, data)
            self.fs.mv(partial, final)
        return final

    def exists(self, uri: str) -> bool:
        return Path(uri).exists() if self.local else self.fs.exists(uri)

    def sweep_stale_temps(self) -> int:
        """Remove temporaries of processes on this host that died mid-write (kill -9)."""
        if not self.local:
            return 0
        tmp_root = Path(self.root) / ".tmp"
        removed = 0
        host = socket.gethostname()
        for folder in tmp_root.glob(f"{host}-*") if tmp_root.exists() else []:
            pid = folder.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                removed += sum(1 for _ in folder.iterdir())
                shutil.rmtree(folder, ignore_errors=True)
        return removed

    def release(self) -> None:
        """Drop this process's (empty) temporary folder."""
        if self.local:
            folder = Path(self.root) / ".tmp" / self._tmp
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
