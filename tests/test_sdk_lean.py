"""``vzcloud.sdk.lean``: AsyncCloud's block fetches (``fetch_range``) without httpx.

Against the real server: same bytes and checksum as httpx, one kept-alive connection,
an expired token refreshed, errors mapped, a connection the server closed while idle
replaced. HTTP framing the real server does not produce (chunked bodies, a body up to
the close, interim responses, garbage) is answered by a few lines of raw socket server.
"""

from __future__ import annotations

import hashlib
import io
import socket
from collections.abc import Callable

import pytest
import trio

from vzcloud import AsyncCloud, Cloud, NotFoundError
from vzcloud.api.protocol import HttpRequest, HttpResponse
from vzcloud.sdk.flows import TransportFailure
from vzcloud.sdk.lean import LeanHttp

from .conftest import Cloud as CloudFixture
from .conftest import User
from .sdk_fixtures import make_client

V = "/VZMOBILE"
pytestmark = [pytest.mark.trio, pytest.mark.timeout(60)]


def payload(size: int) -> bytes:
    return hashlib.shake_256(b"lean").digest(size)


@pytest.fixture
def stored(cloud: CloudFixture, user: User) -> tuple[str, bytes, str | None]:
    data = payload(600_000)  # above lean.RECV_SIZE: a large body is received directly
    with make_client(cloud, user, Cloud) as sdk:
        f = sdk.upload(io.BytesIO(data), V, name="lean.bin")
    return f.path, data, f.checksum


async def test_same_bytes_as_httpx_on_one_connection(
        cloud: CloudFixture, user: User, stored: tuple[str, bytes, str | None]) -> None:
    path, data, checksum = stored
    async with make_client(cloud, user, AsyncCloud) as lean, \
            make_client(cloud, user, AsyncCloud) as plain:
        plain._lean = None  # httpx only
        for offset, length in ((0, 1), (10, 5000), (599_990, 10), (0, 600_000), (7, 400_000)):
            got = await lean.fetch_range(path, offset, length)
            assert got == (data[offset:offset + length], checksum)
            assert got == await plain.fetch_range(path, offset, length)
        assert await lean.fetch_range(path, 99_000) == (data[99_000:], checksum)
        assert await lean.fetch_range(path, 599_000) == (data[599_000:], checksum)
        idle = [c for conns in lean._lean._idle.values() for c in conns]
        assert len(idle) == 1  # every fetch reused the one connection


async def test_expired_token_refreshed_and_errors_mapped(
        cloud: CloudFixture, user: User, stored: tuple[str, bytes, str | None]) -> None:
    path, data, checksum = stored
    async with make_client(cloud, user, AsyncCloud, access_token="expired") as sdk:
        assert await sdk.fetch_range(path, 5, 5) == (data[5:10], checksum)
        assert sdk._session.refreshes == 1
        with pytest.raises(NotFoundError):
            await sdk.fetch_range(f"{V}/missing.bin", 0, 10)
        assert await sdk.fetch_range(path, 0, 3) == (data[:3], checksum)  # still usable


async def test_connection_closed_while_idle_is_replaced(
        cloud: CloudFixture, user: User, stored: tuple[str, bytes, str | None]) -> None:
    path, data, checksum = stored
    async with make_client(cloud, user, AsyncCloud) as sdk:
        await sdk.fetch_range(path, 0, 10)
        (conn,) = [c for conns in sdk._lean._idle.values() for c in conns]
        conn.sock.shutdown(socket.SHUT_WR)  # the server answers with a close
        await trio.sleep(0.2)
        assert await sdk.fetch_range(path, 10, 10) == (data[10:20], checksum)
        (fresh,) = [c for conns in sdk._lean._idle.values() for c in conns]
        assert fresh is not conn


# Framing, against a raw server ----------------------------------------------------------


async def _exchange(answers: list[bytes], requests: int = 1,
                    ) -> list[HttpResponse | TransportFailure]:
    """``requests`` GETs through one LeanHttp to a server that answers each request it
    reads with the next of ``answers`` (closing the connection after an answer ending
    in ``b"<close>"``)."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    pending = list(answers)

    async def serve() -> None:
        while pending:
            conn, _ = await listener.accept()
            with conn:
                while pending:
                    got = b""
                    while b"\r\n\r\n" not in got:
                        chunk = await conn.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                    if not got:
                        break
                    answer = pending.pop(0)
                    close = answer.endswith(b"<close>")
                    await conn.send(answer.removesuffix(b"<close>"))
                    if close:
                        break

    http = LeanHttp(connect_timeout=5, timeout=5)
    results: list[HttpResponse | TransportFailure] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        for _ in range(requests):
            results.append(await http.send(HttpRequest(
                "GET", f"http://127.0.0.1:{port}/x?y=1", {"Range": "bytes=0-"},
                endpoint="download")))
        nursery.cancel_scope.cancel()
    http.close()
    listener.close()
    return results


def _ok(body: bytes) -> Callable[[HttpResponse | TransportFailure], None]:
    def check(r: HttpResponse | TransportFailure) -> None:
        assert isinstance(r, HttpResponse) and r.status == 200 and r.content == body
    return check


async def test_framing() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n")
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    until_close = b"HTTP/1.0 200 OK\r\nETag: \"abc\"\r\n\r\nto the end<close>"
    first, second, third = await _exchange([chunked, interim, until_close], 3)
    _ok(b"hello world")(first)
    _ok(b"hi")(second)
    _ok(b"to the end")(third)
    assert isinstance(third, HttpResponse) and third.header("ETag") == '"abc"'


async def test_keep_alive_closed_by_server_then_new_connection() -> None:
    close_after = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na<close>"
    again = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1\r\n\r\nb"
    first, second = await _exchange([close_after, again], 2)
    _ok(b"a")(first)
    assert isinstance(second, HttpResponse) and second.status == 206 and second.content == b"b"


@pytest.mark.parametrize("answer", [
    b"garbage\r\n\r\n<close>",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort<close>",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n\r\nx",
])
async def test_broken_answers_are_transport_failures(answer: bytes) -> None:
    (result,) = await _exchange([answer])
    assert isinstance(result, TransportFailure) and result.reached_server


async def test_refused_connection_never_reached_the_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        result = await LeanHttp(connect_timeout=5).send(HttpRequest(
            "GET", f"http://127.0.0.1:{port}/x", {}, endpoint="download"))
    assert isinstance(result, TransportFailure) and not result.reached_server


async def test_bytes_beyond_a_response_end_its_connection() -> None:
    """The answer stands, but a stream with bytes nobody asked for is not reused."""
    followed = (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")
    garbage = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nbgarbage"
    fresh = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"
    first, second, third = await _exchange([followed, garbage, fresh], 3)
    _ok(b"a")(first)
    _ok(b"b")(second)
    _ok(b"c")(third)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (300 << 10) + b"\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n<close>",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
])
async def test_head_limit_upgrade_and_transfer_codings_refused(answer: bytes) -> None:
    (result,) = await _exchange([answer])
    assert isinstance(result, TransportFailure) and result.reached_server
