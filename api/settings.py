"""API settings: `STREETAUDIT_API_*` environment variables (or `.env`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class ApiSettings(BaseSettings):
    """How the API reaches the database and what it tells caches and browsers.

    The API connects *as* the read-only login role streetaudit_reader (database_url; unset:
    the private cluster's reader) and refuses to start as a user that could write. Every
    wait on the database is bounded, so a lost database is a quick 503, never a hang.
    """

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_API_", env_file=".env", extra="ignore")

    database_url: str | None = None
    # Off by default: a page on another site must not be able to read this API from the
    # user's browser. Comma-separated origins (https://maps.example.org), or * for any.
    cors_origins: str = ""
    # Bound on every statement of the API's connections (the role's own default is 5 s).
    statement_timeout_ms: int = Field(5000, ge=100, le=600_000)
    # Seconds a request waits for a pooled connection, and for a new one, before a 503.
    pool_timeout: float = Field(1.0, gt=0, le=60)
    connect_timeout: int = Field(2, ge=2, le=60)
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

    @field_validator("database_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",")):
            if origin and origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"each origin must be * or start with http:// or https://, got {origin!r}")
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]
