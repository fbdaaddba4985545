"""Read an HTTP answer's body with a size bound (aiohttp), one helper for every client;
and :func:`undecodable_encoding`: an answer in a Content-Encoding the client cannot read."""

from __future__ import annotations

import re

import aiohttp

from polyvocab.errors import BadResponse

__all__ = ["MAX_BODY_BYTES", "read_body", "undecodable_encoding"]

_ENCODING_TEXT = re.compile(r"can not decode content-encoding:?\s*([^.'\"\n]{0,40})",
                            re.IGNORECASE)


def undecodable_encoding(exc: BaseException, *, what: str) -> BadResponse | None:
    """The :class:`BadResponse` (``kind="content_encoding"``) that ``exc`` of aiohttp is
    when the answer came in a Content-Encoding the client never asked for (it asks
    ``gzip, deflate``) or that is not what it says: aiohttp raises a
    ``ClientResponseError`` "status 400" for ``br`` or ``zstd`` (without the Brotli or
    zstd module), a ``ClientPayloadError`` for a gzip body that is not gzip. Those read
    as a failed connection (``ConnectError``, ``ConnectionLost``) and were retried as a
    network fault; it is the provider's (or a proxy's) misconfiguration. None for any
    other error."""
    if not isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return None
    texts = [getattr(exc, "message", None), exc.__cause__, exc.args[0] if exc.args else None]
    for text in texts:
        found = _ENCODING_TEXT.search(str(text)) if text is not None else None
        if found is not None:
            return BadResponse(f"{what}: the answer's body is in Content-Encoding "
                               f"{found.group(1) or '?'}, which this client did not ask for "
                               "or cannot decode (the provider's or a proxy's "
                               "misconfiguration)", kind="content_encoding")
    return None

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
