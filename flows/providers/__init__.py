"""Street-view providers behind one interface (see `base`); `open_provider` picks one by name."""

from __future__ import annotations

from streetaudit.flows.errors import InputError
from streetaudit.flows.providers.base import Provider
from streetaudit.flows.providers.settings import ProviderSettings
from streetaudit.flows.settings_loading import load_settings

PROVIDERS = ("baidu", "google", "mapillary", "folder", "synthetic")


def open_provider(spec: str, settings: ProviderSettings | None = None) -> Provider:
    """`spec` is a provider name, or `folder:/path` for the folder provider."""
    settings = settings or provider_settings()
    name, _, argument = spec.partition(":")
    if name == "baidu":
        from streetaudit.flows.providers.baidu import BaiduProvider

        return BaiduProvider(settings)
    if name == "google":
        from streetaudit.flows.providers.google import GoogleProvider

        return GoogleProvider(settings)
    if name == "mapillary":
        from streetaudit.flows.providers.mapillary import MapillaryProvider

        return MapillaryProvider(settings)
    if name == "folder":
        from streetaudit.flows.providers.folder import FolderProvider

        return FolderProvider(settings, argument or None)
    if name == "synthetic":
        from streetaudit.flows.providers.synthetic import SyntheticProvider

        return SyntheticProvider()
    raise InputError(f"--provider must be one of {', '.join(PROVIDERS)} (or folder:/path), got {spec!r}")


def provider_settings() -> ProviderSettings:
    return load_settings(ProviderSettings, echo_value=False)


def configured_provider(settings: ProviderSettings | None = None) -> str | None:
    """The first real provider whose key is set, for the demo; None means use `synthetic`."""
    settings = settings or provider_settings()
    for name, key in (("baidu", "baidu_ak"), ("google", "google_key"), ("mapillary", "mapillary_token")):
        if settings.secret(key):
            return name
    return None
