"""Read an HTTP answer's body with a size bound, and tell an answer in a Content-Encoding
the client cannot read: :mod:`polyvocab.http_read`, under the monitor's name."""

from __future__ import annotations

from polyvocab.http_read import MAX_BODY_BYTES, read_body, undecodable_encoding

__all__ = ["MAX_BODY_BYTES", "read_body", "undecodable_encoding"]
