"""Requests the HTTP parser itself refuses (server.runner.CloudHttpProtocol): each gets
its status and our JSON error body, never uvicorn's plain-text 400, over raw loopback
sockets since no HTTP client sends them."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from vzcloud.api.endpoints import BASE_PATH
from vzcloud.server.runner import MAX_HEAD_BYTES, MAX_URL_BYTES

from .conftest import Cloud, User
from .helpers import upload


def exchange(cloud: Cloud, *pieces: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send ``pieces`` (one ``sendall`` each) on one connection, read until the server
    closes it, and return every response: status, headers (lower-case names), body."""
    parts = urlsplit(cloud.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # refused before all was sent: the answer is already there
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    responses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        responses.append((int(status_line.split()[1]), headers, rest[:size]))
        data = rest[size:]
    return responses


def assert_json_error(response: tuple[int, dict[str, str], bytes], status: int) -> dict:
    got_status, headers, body = response
    assert got_status == status, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = json.loads(body)
    assert isinstance(error["error"], str) and error["error"]
    assert isinstance(error["error_description"], str) and error["error_description"]
    return error


ACCOUNT = f"{BASE_PATH}/account".encode()


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"HELLO\r\n\r\n", id="no-request-line"),
    pytest.param(b"GET " + ACCOUNT + b" HTTP/9.9\r\nHost: x\r\n\r\n", id="bad-version"),
    pytest.param(b"GET " + ACCOUNT + b" HTTP/1.1\r\nHo st: x\r\n\r\n", id="space-in-name"),
    pytest.param(b"GET " + ACCOUNT + b" HTTP/1.1\r\nHost: a\x01b\r\n\r\n", id="ctl-in-value"),
    pytest.param(b"GET " + ACCOUNT + b"\x7f HTTP/1.1\r\nHost: x\r\n\r\n", id="del-in-url"),
    pytest.param(b"GET " + ACCOUNT + b"/\xff HTTP/1.1\r\nHost: x\r\n\r\n", id="non-ascii-url"),
    pytest.param(b"POST " + ACCOUNT + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
                 id="bad-content-length"),
    pytest.param(b"POST " + ACCOUNT + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                 b"Content-Length: 2\r\n\r\nab", id="two-content-lengths"),
    pytest.param(b"POST " + ACCOUNT + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="length-and-chunked"),
])
def test_unparseable_request_is_a_json_400(cloud: Cloud, request_bytes: bytes) -> None:
    (response,) = exchange(cloud, request_bytes)
    error = assert_json_error(response, 400)
    assert error["error"] == "invalid_request"
    assert error["error_description"].startswith("malformed HTTP request")


def test_bad_chunk_in_a_body_being_read_is_a_json_400(user: User, cloud: Cloud) -> None:
    head = (f"POST {BASE_PATH}/fops/createfolder HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {user.access_token}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    (response,) = exchange(cloud, head, b"5\r\n{\"pat\r\nzz\r\n")
    assert_json_error(response, 400)


def test_head_over_the_limit_is_a_json_431(cloud: Cloud) -> None:
    # One long header in many pieces (httptools buffers it without a callback; the
    # first read, up to 256 KiB, is not counted) ...
    piece = b"a" * 60000
    pieces = [b"GET " + ACCOUNT + b" HTTP/1.1\r\nHost: x\r\nX-Big: "]
    pieces += [piece] * ((MAX_HEAD_BYTES + 512 * 1024) // len(piece))
    (response,) = exchange(cloud, *pieces)
    assert assert_json_error(response, 431)["error"] == "request_header_fields_too_large"
    # ... and many headers in one piece.
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 1000) for i in range(1100))
    (response,) = exchange(cloud, b"GET " + ACCOUNT + b" HTTP/1.1\r\n" + headers + b"\r\n")
    assert_json_error(response, 431)


@pytest.mark.parametrize("pieces", [1, 20])
def test_url_over_64k_is_a_json_400(cloud: Cloud, pieces: int) -> None:
    url = ACCOUNT + b"?x=" + b"b" * MAX_URL_BYTES
    step = len(url) // pieces + 1
    chunks = [url[i:i + step] for i in range(0, len(url), step)]
    (response,) = exchange(cloud, b"GET ", *chunks, b" HTTP/1.1\r\nHost: x\r\n\r\n")
    error = assert_json_error(response, 400)
    assert f"URL is over {MAX_URL_BYTES} bytes" in error["error_description"]


def test_long_query_under_the_limit_reaches_the_router(user: User, cloud: Cloud) -> None:
    """Over a thousand uris (the most the API takes) in a URL under the limit: the
    router answers, with its precise 400."""
    query = "&".join(f"uri=%2FVZMOBILE%2Fn{i}" for i in range(1001))
    request = (f"DELETE {BASE_PATH}/favorites?{query} HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {user.access_token}\r\nConnection: close\r\n\r\n")
    (response,) = exchange(cloud, request.encode())
    error = assert_json_error(response, 400)
    assert "1000 items" in error["error_description"]


def test_garbage_after_pipelined_requests_waits_for_their_answers(
        user: User, cloud: Cloud) -> None:
    good = (f"GET {BASE_PATH}/account HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {user.access_token}\r\n\r\n").encode()
    responses = exchange(cloud, good + good + b"NOT HTTP AT ALL\r\n\r\n")
    assert [status for status, _, _ in responses] == [200, 200, 400]
    assert json.loads(responses[0][2])["id"] == user.user_id
    assert_json_error(responses[2], 400)


def test_good_requests_keep_the_connection(user: User, cloud: Cloud) -> None:
    good = (f"GET {BASE_PATH}/account HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {user.access_token}\r\n\r\n").encode()
    last = good.replace(b"Host: x", b"Host: x\r\nConnection: close")
    responses = exchange(cloud, good, last)
    assert [status for status, _, _ in responses] == [200, 200]


def test_expect_100_continue_then_body(user: User, cloud: Cloud) -> None:
    """The interim 100 goes out at once (the final response's head waits for its body)."""
    body = b'{"path": "/VZMOBILE", "name": "via-100"}'
    head = (f"POST {BASE_PATH}/fops/createfolder HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {user.access_token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n"
            "\r\n").encode()
    parts = urlsplit(cloud.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 201 ") or data.startswith(b"HTTP/1.1 200 "), data
    assert b'"via-100"' in data


def test_head_and_get_of_a_file_on_one_connection(user: User, cloud: Cloud) -> None:
    """HEAD writes no body (so its head is not held back for one); a GET after it on the
    same connection gets its whole answer."""
    data = b"head then get\n"
    upload(user, "/VZMOBILE/f.txt", data)
    auth = f"Authorization: Bearer {user.access_token}\r\n"
    head = f"HEAD {BASE_PATH}/files/VZMOBILE/f.txt HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
    get = (f"GET {BASE_PATH}/files/VZMOBILE/f.txt HTTP/1.1\r\nHost: x\r\n{auth}"
           "Range: bytes=5-8\r\nConnection: close\r\n\r\n").encode()
    parts = urlsplit(cloud.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n")
        assert f"content-length: {len(data)}".encode() in answer.lower()
        sock.sendall(get)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 206 ") and rest.endswith(b"then")
    assert b"content-range: bytes 5-8/14" in rest.lower()
