"""Settings of the raters' endpoints: `STREETAUDIT_API_RATER_*` environment variables (or `.env`)."""

from __future__ import annotations

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RatingApiSettings(BaseSettings):
    """The raters' endpoints use their own small pool, logged in as streetaudit_rater.

    `database_url` is that role's URL (`streetaudit serve` sets it for the private
    cluster). Unset, the rating endpoints answer 503: there is no SET ROLE fallback,
    since a role switched to can be switched back by whoever runs the queries.
    """

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_API_RATER_", env_file=".env", extra="ignore")

    database_url: str | None = None
    pool_min: int = 1
    pool_max: int = 8

    @field_validator("database_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None
