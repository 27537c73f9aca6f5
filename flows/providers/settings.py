"""Provider keys and endpoints, from `STREETAUDIT_*` environment variables or `.env`.

Keys are `SecretStr`, so a settings object printed or logged shows `**********`.
Every endpoint can be overridden (a proxy, or a local server in the tests).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_", env_file=".env", extra="ignore")

    baidu_ak: SecretStr | None = None
    baidu_url: str = "https://api.map.baidu.com/panorama/v2"
    baidu_coordtype: str = "wgs84ll"
    google_key: SecretStr | None = None
    google_secret: SecretStr | None = None
    google_url: str = "https://maps.googleapis.com/maps/api/streetview"
    mapillary_token: SecretStr | None = None
    mapillary_url: str = "https://graph.mapillary.com"
    mapillary_radius: float = 25.0
    folder_path: Path | None = None
    folder_radius: float = 15.0

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None
