"""Keep secrets out of logs, histories, reports and exceptions.

Register every secret once (:func:`register_secret`, :func:`register_url_secrets` for a
provider URL); :func:`redact` replaces each occurrence in a text. Even a secret that was
never registered is masked when it has the shape providers use:

- query values named ``key``, ``apikey``, ``api_key``, ``token``, ``access_token``,
  ``secret``, ``password``, ``auth`` (any provider, explorer included);
- a URL path segment of 16+ key characters with a digit (Alchemy ``/v2/KEY``, Infura
  ``/v3/ID``, QuickNode ``/TOKEN/``, Ankr, public RPCs with a key in the path);
- ``user:password@`` in a URL, and ``KEY@`` (a user part without a password is the
  credential); Telegram ``/bot<TOKEN>/`` and ``token=<TOKEN>``.

:func:`mask` shows none of a secret's characters.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["key_like_segment", "mask", "mask_url", "redact", "redact_obj", "register_secret",
           "register_url_secrets"]

_lock = threading.Lock()
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()  # _secrets sorted for redact, rebuilt on register
_PATTERNS = [
    # a value ends at the text's own punctuation too: "(... /rpc?apikey=KEY); using ..."
    # lost its ");" to the mask (no provider's key holds any of ),;])
    (re.compile(r"(?i)([?&;](?:api[_-]?key|key|token|access[_-]?token|secret|password|auth"
                r"|apikey)=)[^&\s\"'#),;\]]+"), r"\1***"),
    (re.compile(r"(?i)(apikey=)[^&\s\"'),;\]]+"), r"\1***"),
    (re.compile(r"(?i)((?:wss?|https?)://[^/\s:@\"']+:)[^@\s/\"']+@"), r"\1***@"),
    # the user part alone is the credential (wss://KEY@host, https://KEY:@host)
    (re.compile(r"(?i)((?:wss?|https?)://)[^/\s:@\"'?#]+:?@"), r"\1***@"),
    (re.compile(r"(?i)((?:wss?|https?)://[^/\s\"'?#]+(?:/[^/\s\"'?#]*)*?/)"
                r"(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])"), r"\1***"),
    (re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^&\s\"',}),;\]]+"), r"\1***"),
    (re.compile(r"(/bot)[0-9]+:[A-Za-z0-9_-]+"), r"\1***"),
    (re.compile(r"(?i)(token[\"']?\s*[:=]\s*[\"']?)[0-9]+:[A-Za-z0-9_-]+"), r"\1***"),
]


def mask(secret: str) -> str:
    """A safe stand-in for a secret: none of its characters, only that it is set."""
    return "***" if secret else ""


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` so that :func:`redact` removes it wherever it appears."""
    global _longest_first
    if secret and len(secret) >= 4:
        with _lock:
            _secrets.add(secret)
            _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


_KEY_CHARS = re.compile(r"[A-Za-z0-9_\-]+")


def key_like_segment(segment: str) -> bool:
    """Does this URL path segment look like a provider key? 12+ characters with a digit
    (Alchemy ``/v2/KEY``, Infura ``/v3/ID``, QuickNode ``/TOKEN/``, a short custom key),
    or 20+ without one (a random key can lack digits). The one rule for both
    :func:`register_url_secrets` and :func:`mask_url`; it errs on the side of masking."""
    return len(segment) >= 20 or (len(segment) >= 12 and any(c.isdigit() for c in segment))


def mask_url(url: str) -> str:
    """``url`` safe to print or store: credentials, key-like path segments and every query
    value replaced by ``***`` (``https://polygon-mainnet.g.alchemy.com/v2/***``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = "***@" + netloc
    path = "/".join("***" if key_like_segment(seg) else seg for seg in parts.path.split("/"))
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def register_url_secrets(url: str | None) -> None:
    """Register the parts of a provider URL that carry a key: key-like path segments
    (:func:`key_like_segment`), query values and a password, so they are masked even
    where they appear without the URL."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a broken URL: mask its every key-like run of characters
        for run in _KEY_CHARS.findall(url):
            if key_like_segment(run):
                register_secret(run)
        return
    for segment in parts.path.split("/"):
        if key_like_segment(segment):
            register_secret(segment)
    for _name, value in parse_qsl(parts.query, keep_blank_values=False):
        if len(value) >= 8:
            register_secret(value)
    if password:
        register_secret(password)
    elif parts.username:  # no password: the user part is the key (wss://KEY@host)
        register_secret(parts.username)


def redact(text: str) -> str:
    """``text`` with every registered secret and every key-looking URL part masked."""
    for s in _longest_first:  # one tuple, swapped whole by register_secret
        if s in text:
            text = text.replace(s, "***")
    if not _may_match(text):
        return text
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _may_match(text: str) -> bool:
    """Can any of :data:`_PATTERNS` match? Each needs an ``=`` or a ``/``, or a ``:`` with
    ``api`` or ``token`` beside it: hashes, trade ids and plain words skip the regexes
    (the hot path writes a few of them per delivered trade)."""
    if "=" in text or "/" in text:
        return True
    if ":" not in text:
        return False
    low = text.lower()
    return "api" in low or "token" in low


def redact_obj(obj: Any, _depth: int = 0) -> Any:
    """A deep copy of a JSON-like object with every string redacted. Past 16 levels (a
    hostile input carried into a history row) the rest is replaced by a short text."""
    if isinstance(obj, str):
        return redact(obj)
    if _depth >= 16 and isinstance(obj, (dict, list, tuple)):
        return f"<{type(obj).__name__} nested too deep>"
    if isinstance(obj, dict):
        return {k: redact_obj(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v, _depth + 1) for v in obj]
    return obj
