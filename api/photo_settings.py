"""STREETAUDIT_SERVE_IMAGES and STREETAUDIT_BASEMAP_STYLE: what the map may show beyond our own tiles."""

from __future__ import annotations

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_OFF = {"", "0", "false", "no", "off", "none"}
_ALL = {"1", "true", "yes", "on", "all", "*"}


class PhotoSettings(BaseSettings):
    """Off by default: most providers' terms (Google, Baidu) forbid passing their imagery on,
    so only the operator can say which providers' images readers may see.

    serve_images: `all`, `none` (the default), or comma-separated providers (`local,mapillary`).
    basemap_style: a MapLibre style URL (…/style.json) or a raster tile URL template with
    {z}/{x}/{y}; unset, the map draws our roads and areas alone and needs no internet.
    """

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_", env_file=".env", extra="ignore")

    serve_images: str = ""
    basemap_style: str = ""

    @field_validator("basemap_style")
    @classmethod
    def _basemap(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://", "/")):
            raise ValueError(
                f"STREETAUDIT_BASEMAP_STYLE must be an http(s) URL or a path on this server, got {value[:80]!r}"
            )
        return value

    @property
    def providers(self) -> frozenset[str] | None:
        """None: every provider; otherwise the providers whose images may be served (maybe none)."""
        value = self.serve_images.strip().lower()
        if value in _ALL:
            return None
        if value in _OFF:
            return frozenset()
        return frozenset(p.strip() for p in value.split(",") if p.strip())

    def allows(self, provider: str) -> bool:
        providers = self.providers
        return providers is None or provider.lower() in providers

    @property
    def any(self) -> bool:
        return self.providers != frozenset()

    @property
    def basemap(self) -> dict | None:
        """How the page adds the basemap: a whole style, or one raster source under our layers."""
        if not self.basemap_style:
            return None
        if "{z}" in self.basemap_style:
            return {"type": "raster", "url": self.basemap_style}
        return {"type": "style", "url": self.basemap_style}
