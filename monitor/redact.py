"""Keep secrets out of logs, histories, reports and exceptions.

Register every secret once (:func:`register_secret`); :func:`redact` replaces each
occurrence in a text, and URLs carrying ``apikey=`` or ``/bot<TOKEN>/`` are masked even
when the secret was never registered.
"""

from __future__ import annotations

import re
import threading
from typing import Any

__all__ = ["mask", "redact", "redact_obj", "register_secret"]

_lock = threading.Lock()
_secrets: set[str] = set()
_PATTERNS = [
    (re.compile(r"(?i)(apikey=)[^&\s\"']+"), r"\1***"),
    (re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^&\s\"',}]+"), r"\1***"),
    (re.compile(r"(/bot)[0-9]+:[A-Za-z0-9_-]+"), r"\1***"),
    (re.compile(r"(?i)(token[\"']?\s*[:=]\s*[\"']?)[0-9]+:[A-Za-z0-9_-]+"), r"\1***"),
]


def mask(secret: str) -> str:
    """A short, safe stand-in for a secret: its first 4 characters and an ellipsis."""
    return secret[:4] + "…" if len(secret) > 8 else "***"


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` so that :func:`redact` removes it wherever it appears."""
    if secret and len(secret) >= 4:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret and every key-looking URL part masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_obj(obj: Any) -> Any:
    """A deep copy of a JSON-like object with every string redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj
