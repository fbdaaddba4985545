"""Read an HTTP answer's body with a size bound: :mod:`polyvocab.http_read`, under the
monitor's name."""

from __future__ import annotations

from polyvocab.http_read import MAX_BODY_BYTES, read_body

__all__ = ["MAX_BODY_BYTES", "read_body"]
