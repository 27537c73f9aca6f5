"""API settings: `STREETAUDIT_API_*` environment variables (or `.env`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class ApiSettings(BaseSettings):
    """How the API reaches the database and what it tells caches and browsers.

    The API reads only schema `api`; every pooled connection switches to `role`
    (streetaudit_reader by default), so even a URL of a more privileged user cannot
    make it read or write anything else.
    """

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_API_", env_file=".env", extra="ignore")

    database_url: str | None = None
    role: str | None = "streetaudit_reader"
    cors_origins: str = "*"
    # Tiles whose URL names the current data version never change: cache them long.
    versioned_max_age: int = 86400
    max_age: int = 60
    # How long the data version is reused before asking the database again (seconds).
    version_ttl: float = 1.0
    # In-process cache of encoded tiles (MiB, 0 turns it off); see api/tilecache.py.
    tile_cache_mb: int = 64
    pool_min: int = 1
    pool_max: int = 16
    maplibre_dir: Path = REPO_ROOT / "node_modules" / "maplibre-gl" / "dist"
    ogc: bool = True
    stats_row_limit: int = 10000

    @field_validator("database_url", "role")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
