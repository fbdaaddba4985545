"""An explorer answer in a Content-Encoding the client never asked for (it asks ``gzip,
deflate``), or a body that is not the gzip it says: the explorer's (or a CDN's) bad
answer, not a network fault. A raw HTTP server on loopback, so any header can be sent."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from monitor.errors import BadResponse
from monitor.explorer_client import ExplorerClient
from monitor.history import NullHistory

BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x10"}'


class Rows(NullHistory):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        self.rows.append((event, fields))
        return {}


async def _answer_with(encoding: str) -> tuple[Any, ExplorerClient, Rows]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
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
            client = ExplorerClient(f"http://127.0.0.1:{port}/v2/api", session,
                                    rate_per_s=1000.0, timeout=10.0, history=rows)
            try:
                return await client.block_number(), client, rows
            except BaseException as exc:
                return exc, client, rows
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip"])
def test_an_explorer_body_in_an_encoding_not_asked_for_is_a_bad_response(
        encoding: str) -> None:
    """Brotli or zstd (aiohttp: "Can not decode content-encoding", a ClientResponseError
    of status 400) or a body labelled gzip that is not gzip was a ConnectError, counted
    as a transport failure (a network fault). It is a :class:`BadResponse` of kind
    ``content_encoding`` naming the encoding, counted as a bad response, with a
    ``bad_input`` row, as the JSON-RPC client says it."""
    got, client, rows = asyncio.run(_answer_with(encoding))
    assert isinstance(got, BadResponse), repr(got)
    assert got.kind == "content_encoding"
    assert encoding in str(got)
    assert client.calls.failures == {"bad_response": 1}
    assert ("bad_input", {"kind": "explorer_bad_response", "source": "explorer",
                          "reason": "proxy.eth_blockNumber"}) in rows.rows


def test_an_encoding_the_explorer_client_does_not_know_is_read_as_it_came() -> None:
    """An unknown Content-Encoding (aiohttp leaves the body as it came) is read as the
    JSON it is."""
    got, _, _ = asyncio.run(_answer_with("identity"))
    assert got == 16
