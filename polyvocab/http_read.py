"""Read an HTTP answer's body with a size bound (aiohttp), one helper for every client."""

from __future__ import annotations

import aiohttp

from polyvocab.errors import BadResponse

__all__ = ["MAX_BODY_BYTES", "read_body"]

MAX_BODY_BYTES = 64 * 1024 * 1024  # 10,000 logs of ~1 KB fit many times over


async def read_body(resp: aiohttp.ClientResponse, *, what: str,
                    limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, or :class:`BadResponse` (``kind="too_large"``) past ``limit`` bytes; the
    rest is not read (the connection is dropped by the caller's context manager)."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise BadResponse(f"{what}: answer of {declared} bytes, more than {limit}",
                          status=resp.status, kind="too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            resp.close()
            chunks.clear()  # not kept alive by the traceback of what is raised here
            raise BadResponse(f"{what}: answer of more than {limit} bytes",
                              status=resp.status, kind="too_large")
        chunks.append(chunk)
    return b"".join(chunks)
