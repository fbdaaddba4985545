"""An answer in a Content-Encoding the JSON-RPC client never asked for (it asks ``gzip,
deflate``): a bad response of the provider, not a network fault (a raw HTTP server on
loopback, so any header can be sent)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from polyvocab.errors import BadResponse
from polyvocab.jsonrpc_http import JsonRpcHttpClient

BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x10"}'


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, event: str, **fields: Any) -> None:
        self.rows.append((event, fields))


async def _answer_with(encoding: str) -> tuple[BaseException | Any, Rows]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s"
                     % (encoding.encode(), len(BODY), BODY))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rows = Rows()
    try:
        async with aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(f"http://127.0.0.1:{port}/", session, max_retries=0,
                                       history=rows, timeout=10.0)
            try:
                return await client.call("eth_blockNumber"), rows
            except BaseException as exc:
                return exc, rows
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip"])
def test_a_body_in_an_encoding_not_asked_for_is_a_bad_response(encoding: str) -> None:
    """Brotli or zstd (never asked for; aiohttp raises "Can not decode content-encoding"
    as a ClientResponseError of status 400) was a ConnectError, and a body labelled gzip
    that is not gzip a ConnectionLost: both retried and counted as network faults. They
    are a :class:`BadResponse` of kind ``content_encoding`` naming the encoding, and a
    ``bad_input`` row."""
    got, rows = asyncio.run(_answer_with(encoding))
    assert isinstance(got, BadResponse), repr(got)
    assert got.kind == "content_encoding"
    assert encoding in str(got)
    assert ("bad_input", {"kind": "rpc_content_encoding", "source": "rpc_http",
                          "reason": got.message[:200]}) in rows.rows


def test_an_encoding_the_client_does_not_know_is_read_as_it_came() -> None:
    """An unknown Content-Encoding (aiohttp leaves the body as it came) is read as the
    JSON it is."""
    got, _ = asyncio.run(_answer_with("identity"))
    assert got == "0x10"
