"""The installed distribution's version, for every command's ``--version``."""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "package_version"]

DISTRIBUTION = "polymarket-ws-pilot"


def package_version() -> str:
    """The version of the installed ``polymarket-ws-pilot``, or ``"unknown"`` when the
    code runs from a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
