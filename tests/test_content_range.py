"""Ranges of a large blob (``server.content_response``): one range up to
``RANGE_PRELOAD_MAX`` is read with one pread and sent from memory; a larger one, several
ranges, or a conditional range (If-Range) are streamed from the file as before. Either
way the bytes and headers are the same."""

from __future__ import annotations

import os

import pytest

from vzcloud.server import content_response
from vzcloud.server.content_response import PRELOAD_MAX, RANGE_PRELOAD_MAX

from .conftest import User
from .helpers import upload

MiB = 1 << 20


@pytest.fixture
def big(user: User, monkeypatch: pytest.MonkeyPatch) -> bytes:
    # A smaller limit keeps the blob small while testing both sides of it.
    monkeypatch.setattr(content_response, "RANGE_PRELOAD_MAX", 2 * MiB)
    data = os.urandom(5 * MiB + 321)
    upload(user, "/VZMOBILE/big.bin", data)
    return data


def test_limits() -> None:
    assert PRELOAD_MAX < RANGE_PRELOAD_MAX


@pytest.mark.parametrize("start, end", [
    (0, MiB),                        # a block at the start (base 0)
    (3 * MiB + 5, 5 * MiB + 4),      # two blocks, unaligned: preloaded
    (MiB, 4 * MiB),                  # over the limit: streamed from the file
    (5 * MiB, 5 * MiB + 321),        # the tail
    (4 * MiB + 100, 4 * MiB + 100),  # one byte
])
def test_single_range(user: User, big: bytes, start: int, end: int) -> None:
    r = user.http.get("/files/VZMOBILE/big.bin", headers={"Range": f"bytes={start}-{end}"})
    assert r.status_code == 206, r.text
    want = big[start:end + 1]
    assert r.content == want
    assert r.headers["content-range"] == f"bytes {start}-{start + len(want) - 1}/{len(big)}"
    assert r.headers["content-length"] == str(len(want))


def test_several_ranges_are_streamed_from_the_file(user: User, big: bytes) -> None:
    r = user.http.get("/files/VZMOBILE/big.bin", headers={"Range": "bytes=10-19,3000000-3000009"})
    assert r.status_code == 206
    assert r.headers["content-type"].startswith("multipart/byteranges")
    assert big[10:20] in r.content and big[3000000:3000010] in r.content


def test_if_range_mismatch_gives_the_whole_file(user: User, big: bytes) -> None:
    r = user.http.get("/files/VZMOBILE/big.bin",
                      headers={"Range": f"bytes={MiB}-{MiB + 99}", "If-Range": '"other"'})
    assert r.status_code == 200 and r.content == big
    etag = r.headers["etag"]
    r = user.http.get("/files/VZMOBILE/big.bin",
                      headers={"Range": f"bytes={MiB}-{MiB + 99}", "If-Range": etag})
    assert r.status_code == 206 and r.content == big[MiB:MiB + 100]


def test_head_of_a_range(user: User, big: bytes) -> None:
    r = user.http.head("/files/VZMOBILE/big.bin", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == b""
    assert r.headers["content-length"] == "100"


def test_if_range_of_other_content_ignores_a_range_outside_the_file(user: User) -> None:
    # A resumed download of a replaced, now shorter file: the Range lies beyond the new
    # content, yet the stale If-Range makes it the whole new file (200), not a 416.
    upload(user, "/VZMOBILE/swapped.txt", b"new, short")
    url, beyond = "/files/VZMOBILE/swapped.txt", {"Range": "bytes=1000-"}
    for stale in ('"the old checksum"', "Thu, 01 Jan 1970 00:00:00 GMT"):
        r = user.http.get(url, headers={**beyond, "If-Range": stale})
        assert r.status_code == 200 and r.content == b"new, short", stale
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    # Weak tags never match (RFC 9110 13.1.5): the whole file.
    r = user.http.get(url, headers={"Range": "bytes=0-2", "If-Range": f"W/{etag}"})
    assert r.status_code == 200 and r.content == b"new, short"
    # A validator of this very content keeps the Range, outside the file or not.
    for current in (etag, modified):
        r = user.http.get(url, headers={**beyond, "If-Range": current})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */10", current
        r = user.http.get(url, headers={"Range": "bytes=5-", "If-Range": current})
        assert r.status_code == 206 and r.content == b"short", current
