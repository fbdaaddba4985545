"""A provider URL that may carry a key, from a flag or, kept out of argv, from the
environment: ``RPC_URL_FILE`` (a file whose first line is the URL) or ``RPC_URL``.

Every user of a machine can read every process's argv (``ps``), so a URL with a key in
its path or query belongs in a file. Whatever the source, its key is registered for
redaction, and no error repeats the URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from polyvocab.redact import register_url_secrets
from polyvocab.small_files import CONFIG_BYTES, read_small_text

__all__ = ["UrlSourceError", "http_url_from"]


class UrlSourceError(ValueError):
    """No usable URL: one line for the user, without the URL."""


def http_url_from(flag: str | None, env: Mapping[str, str], *, flag_name: str) -> str:
    """The flag's URL, else the first line of the file ``RPC_URL_FILE`` names, else
    ``RPC_URL``; it must be http(s) with a host. Raises :class:`UrlSourceError`."""
    url, where = flag, flag_name
    if url is None and env.get("RPC_URL_FILE"):
        path = env["RPC_URL_FILE"]
        try:
            lines = read_small_text(path, CONFIG_BYTES).strip().splitlines()
        except OSError as exc:
            raise UrlSourceError(f"RPC_URL_FILE: cannot read {path}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
        if not lines:
            raise UrlSourceError(f"RPC_URL_FILE: {path} is empty")
        url, where = lines[0].strip(), f"RPC_URL_FILE ({path})"
    elif url is None and env.get("RPC_URL"):
        url, where = env["RPC_URL"], "RPC_URL"
    if not url:
        raise UrlSourceError(f"a JSON-RPC URL is needed: {flag_name} URL, or RPC_URL_FILE "
                             "(a file holding it) or RPC_URL in the environment")
    register_url_secrets(url)
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.netloc
    except ValueError:
        scheme, host = "", ""
    if scheme not in ("http", "https") or not host:
        got = f"a {scheme}: URL" if scheme else "no scheme"
        raise UrlSourceError(f"{where}: must be an http:// or https:// URL ({got})")
    return url
