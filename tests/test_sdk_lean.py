"""``vzcloud.sdk.lean``: AsyncCloud's block fetches (``fetch_range``) and small uploads
from memory without httpx.

Against the real server: same bytes and checksum as httpx, one kept-alive connection,
an expired token refreshed, errors mapped, a connection the server closed while idle
replaced; uploads from memory give the same file as through httpx, on one connection.
HTTP framing the real server does not produce (chunked bodies, a body up to the close,
interim responses, garbage, a connection closed mid-request) is answered by a few lines
of raw socket server.
"""

from __future__ import annotations

import hashlib
import io
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from vzcloud import AsyncCloud, Cloud, NotFoundError
from vzcloud.api.errors import BadRequestError
from vzcloud.api.protocol import HttpRequest, HttpResponse
from vzcloud.sdk import lean
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


# Uploads from memory ----------------------------------------------------------------------


def _connections(sdk: AsyncCloud) -> tuple[int, int]:
    """(lean's idle connections, httpx's pooled connections) of ``sdk``."""
    assert sdk._lean is not None
    kept = sum(len(conns) for conns in sdk._lean._idle.values())
    return kept, len(sdk._http._transport._pool.connections)  # type: ignore[attr-defined]


async def test_upload_from_memory_same_file_as_httpx(cloud: CloudFixture, user: User) -> None:
    sizes = (0, 1, 2048, lean.SEND_WHOLE + 1, 200_000)  # empty, one send, two sends
    async with make_client(cloud, user, AsyncCloud) as sdk, \
            make_client(cloud, user, AsyncCloud) as plain:
        plain._lean = None  # httpx only
        for size in sizes:
            data = payload(size)
            seen: list[tuple[int, int]] = []
            got = await sdk.upload(io.BytesIO(data), V, name=f"lean-{size}.bin",
                                   progress=lambda done, total, seen=seen: seen.append(
                                       (done, total)))
            want = await plain.upload(io.BytesIO(data), V, name=f"httpx-{size}.bin")
            assert (got.size, got.checksum) == (want.size, want.checksum) == (
                size, hashlib.sha256(data).hexdigest())
            assert got.path == f"{V}/lean-{size}.bin"
            assert seen[-1] == (size, size)
            if size:
                assert (await sdk.fetch_range(got.path, 0, size))[0] == data
        # Every request of every upload (and the reads) on one kept-alive lean connection.
        assert _connections(sdk) == (1, 0)
        # Errors mapped as through httpx (the intent's 404).
        with pytest.raises(NotFoundError):
            await sdk.upload(io.BytesIO(b"x"), f"{V}/no-such-folder", name="x.bin")
        assert _connections(sdk)[0] == 1  # an error answer keeps the connection


async def test_upload_from_memory_refreshes_an_expired_token(
        cloud: CloudFixture, user: User) -> None:
    data = payload(lean.MAX_BODY)  # the largest body lean takes, refused before it is read
    async with make_client(cloud, user, AsyncCloud, access_token="expired") as sdk:
        sdk.chunk_threshold = 2 * lean.MAX_BODY
        got = await sdk.upload(io.BytesIO(data), V, name="big.bin")
        assert sdk._session.refreshes == 1
        assert got.checksum == hashlib.sha256(data).hexdigest()
        assert (await sdk.fetch_range(got.path, 0, len(data)))[0] == data
        assert _connections(sdk)[0] == 1  # (the refresh itself went through httpx)


async def test_upload_from_a_file_goes_through_httpx(
        cloud: CloudFixture, user: User, tmp_path: Path) -> None:
    local = tmp_path / "f.bin"
    local.write_bytes(payload(5000))
    async with make_client(cloud, user, AsyncCloud) as sdk:
        got = await sdk.upload(local, V)
        assert got.checksum == hashlib.sha256(payload(5000)).hexdigest()
        kept, pooled = _connections(sdk)
        assert kept == 1 and pooled == 1  # the intent by lean, the streamed body by httpx


# A connection closed mid-request, against a raw server -----------------------------------


class RawServer:
    """Reads requests (head and ``Content-Length`` body) and does with each what the
    next of ``actions`` says: bytes = answer them, None = close the connection without
    an answer. Connections the client ends are kept open (no FIN from this side)."""

    def __init__(self, actions: list[bytes | None]) -> None:
        self.actions = actions
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, body)
        self.port = 0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        self.port = listener.getsockname()[1]
        task_status.started()
        with listener:
            async with trio.open_nursery() as nursery:
                for number in range(100):
                    conn, _ = await listener.accept()
                    nursery.start_soon(self._serve, number, conn)

    async def _serve(self, number: int, conn: trio.socket.SocketType) -> None:
        with conn:
            got = b""
            while self.actions:
                while b"\r\n\r\n" not in got:
                    chunk = await conn.recv(65536)
                    if not chunk:
                        await trio.sleep_forever()  # the client ended: keep ours open
                    got += chunk
                head, _, got = got.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(got) < length:
                    got += await conn.recv(65536)
                body, got = got[:length], got[length:]
                self.requests.append((number, head, body))
                action = self.actions.pop(0)
                if action is None:
                    return
                await conn.send(action)


OK_EMPTY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


async def _through(server: RawServer, requests: list[HttpRequest],
                   before: Callable[[LeanHttp, int], None] | None = None,
                   ) -> list[HttpResponse | TransportFailure]:
    http = LeanHttp(connect_timeout=5, timeout=5)
    results: list[HttpResponse | TransportFailure] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for n, req in enumerate(requests):
            if before is not None:
                before(http, n)
            results.append(await http.send(HttpRequest(
                req.method, req.url.replace("PORT", str(server.port)), req.headers,
                req.content, req.endpoint)))
        nursery.cancel_scope.cancel()
    http.close()
    return results


INTENT = HttpRequest("GET", "http://127.0.0.1:PORT/fileupload/intent?name=a", {},
                     endpoint="upload_intent")  # not idempotent
UPLOAD = HttpRequest("POST", "http://127.0.0.1:PORT/upload/u1", {}, b"abc",
                     endpoint="upload")  # idempotent


async def test_post_body_framing() -> None:
    big = payload(lean.SEND_WHOLE * 3)
    server = RawServer([OK_EMPTY, OK_EMPTY, OK_EMPTY])
    results = await _through(server, [
        UPLOAD,
        HttpRequest("POST", "http://127.0.0.1:PORT/upload/u2", {"Content-Length": "1"}, big,
                    endpoint="upload"),
        HttpRequest("POST", "http://127.0.0.1:PORT/commit/c", {}, None, endpoint="commit"),
    ])
    assert all(isinstance(r, HttpResponse) and r.status == 200 for r in results)
    (c1, h1, b1), (c2, h2, b2), (c3, h3, b3) = server.requests
    assert c1 == c2 == c3  # one kept-alive connection
    assert b1 == b"abc" and b"\r\nContent-Length: 3" in h1
    assert b2 == big and f"\r\nContent-Length: {len(big)}".encode() in h2
    assert h2.lower().count(b"content-length") == 1  # the caller's header is replaced
    assert b3 == b"" and b"\r\nContent-Length: 0" in h3
    assert b"expect" not in (h1 + h2 + h3).lower()


async def test_closed_mid_request_not_resent_unless_idempotent() -> None:
    # Not idempotent: the server may have acted on it, so it is not sent again and the
    # failure says it reached the server (the flow then gives up, as with httpx).
    server = RawServer([OK_EMPTY, None, OK_EMPTY])
    first, second = await _through(server, [INTENT, INTENT])
    assert isinstance(first, HttpResponse)
    assert isinstance(second, TransportFailure) and second.reached_server
    assert len(server.requests) == 2
    # Idempotent: sent once more, on a new connection.
    server = RawServer([OK_EMPTY, None, OK_EMPTY])
    first, second = await _through(server, [UPLOAD, UPLOAD])
    assert isinstance(second, HttpResponse) and second.status == 200
    assert [(c, b) for c, _, b in server.requests] == [(0, b"abc"), (0, b"abc"), (1, b"abc")]


async def test_request_never_sent_is_sent_on_a_new_connection() -> None:
    """A kept-alive connection that takes no byte of the request: safe to use another
    even for a request that is not idempotent."""

    def unwritable(http: LeanHttp, n: int) -> None:
        if n == 1:
            for conns in http._idle.values():
                for conn in conns:
                    conn.sock.shutdown(socket.SHUT_WR)  # a send now fails at once

    server = RawServer([OK_EMPTY, OK_EMPTY])
    first, second = await _through(server, [INTENT, INTENT], before=unwritable)
    assert isinstance(second, HttpResponse) and second.status == 200
    assert [c for c, _, _ in server.requests] == [0, 1]



async def test_upload_with_a_known_checksum(cloud: CloudFixture, user: User) -> None:
    """A checksum the caller computed is used as it is: the server checks the content
    against it, so a wrong one fails the upload instead of storing a wrong file."""
    data = payload(3000)
    digest = hashlib.sha256(data).hexdigest()
    async with make_client(cloud, user, AsyncCloud) as sdk:
        got = await sdk.upload(io.BytesIO(data), V, name="known.bin", checksum=digest)
        assert got.checksum == digest
        with pytest.raises(BadRequestError):
            await sdk.upload(io.BytesIO(data), V, name="wrong.bin",
                             checksum=hashlib.sha256(b"other").hexdigest())
        with pytest.raises(NotFoundError):
            await sdk.file_metadata(f"{V}/wrong.bin")
