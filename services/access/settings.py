"""Settings of access control and hardening: part of :class:`ncdc_stac.settings.Settings` (``NCDC_STAC_*``)."""

from __future__ import annotations

from ncdc_stac.settings import ApiKey, Settings

AccessSettings = Settings
__all__ = ["AccessSettings", "ApiKey", "access_settings"]


def access_settings(settings: Settings) -> Settings:
    """The settings access control reads (one settings class for the whole service)."""
    return settings
