"""Keep secrets out of logs, histories, reports and exceptions: :mod:`polyvocab.redact`
(one registry of secrets for every part of the house), under the monitor's name."""

from __future__ import annotations

from polyvocab.redact import mask, redact, redact_obj, register_secret, register_url_secrets

__all__ = ["mask", "redact", "redact_obj", "register_secret", "register_url_secrets"]
