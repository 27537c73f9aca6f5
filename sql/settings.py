"""Database settings: where the data lives and which server to talk to."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """`STREETAUDIT_DATABASE_URL` picks an existing server; unset, a private cluster is used.

    The private cluster keeps a laptop or CI run self-contained: nothing has to be
    installed or configured by hand beyond the PostgreSQL/PostGIS packages.
    """

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_", env_file=".env", extra="ignore")

    database_url: str | None = None
    data_dir: Path = Path(".streetaudit")
    pg_bindir: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()
