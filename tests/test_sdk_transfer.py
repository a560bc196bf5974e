"""Streaming uploads and downloads against the real server: chunking above a (lowered)
threshold with the checksum verified, a failed chunk retried alone, parallel chunks in
AsyncCloud, progress, and downloads that resume a partial file."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from vzcloud import AsyncCloud, Cloud, CloudFile, NotFoundError
from vzcloud.api.errors import BadRequestError

from . import sdk_fixtures
from .conftest import Cloud as CloudFixture
from .conftest import User
from .helpers import sha256, upload
from .sdk_fixtures import SMALL_CHUNK, SMALL_THRESHOLD, make_client

any_sdk = sdk_fixtures.any_sdk  # the fixtures, used by name
sdk = sdk_fixtures.sdk

V = "/VZMOBILE"
ACCESS = "vzcloud.server.access"


def payload(size: int, seed: int = 7) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(size)


def requests(caplog: pytest.LogCaptureFixture, pattern: str) -> list[tuple[float, float]]:
    """(start, end) times of the requests whose access-log line matches ``pattern``."""
    out = []
    for r in caplog.records:
        if r.name == ACCESS and re.search(pattern, r.getMessage()):
            ms = float(re.search(r"\(([\d.]+) ms\)", r.getMessage()).group(1))  # type: ignore[union-attr]
            out.append((r.created - ms / 1000, r.created))
    return out


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_chunked_upload_above_the_threshold(any_sdk: Any, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    data = payload(SMALL_THRESHOLD + 3 * SMALL_CHUNK + 123)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    seen: list[tuple[int, int]] = []
    f = any_sdk.upload(str(local), V, progress=lambda done, total: seen.append((done, total)))
    assert f.size == len(data) and f.checksum == hashlib.sha256(data).hexdigest()
    chunks = -(-len(data) // SMALL_CHUNK)
    assert len(requests(caplog, r"POST /cloud/1/upload/\S+ -> 201")) == chunks
    assert len(requests(caplog, r"POST /cloud/1/commit/\S+ -> 201")) == 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (len(data), len(data))
    back = io.BytesIO()
    any_sdk.download(f, back)
    assert back.getvalue() == data


def test_small_files_go_whole_unless_chunked_is_asked(any_sdk: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    data = payload(100_000)
    any_sdk.upload(io.BytesIO(data), V, name="whole.bin")
    assert len(requests(caplog, r"POST /cloud/1/upload/")) == 1
    assert not requests(caplog, r"POST /cloud/1/commit/")
    f = any_sdk.upload(io.BytesIO(data), V, "forced.bin", True, 30_000)
    assert len(requests(caplog, r"POST /cloud/1/upload/")) == 1 + 4
    assert f.checksum == hashlib.sha256(data).hexdigest()
    empty = any_sdk.upload(io.BytesIO(b""), V, name="empty.bin", chunked=True)
    assert empty.size == 0


def test_a_failed_chunk_is_retried_alone(cloud: CloudFixture, any_sdk: Any,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    data = payload(5 * SMALL_CHUNK)
    cloud.server.cloud.faults.fail("upload", 503, times=2, retry_after=0)
    f = any_sdk.upload(io.BytesIO(data), V, name="retry.bin", chunked=True)
    assert f.checksum == hashlib.sha256(data).hexdigest()
    assert len(requests(caplog, r"GET /cloud/1/fileupload/intent")) == 1
    assert len(requests(caplog, r"POST /cloud/1/upload/\S+ -> 503")) == 2
    assert len(requests(caplog, r"POST /cloud/1/upload/\S+ -> 201")) == 5


@pytest.mark.trio
async def test_async_chunks_go_in_parallel_and_bounded(
    cloud: CloudFixture, user: User, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    data = payload(10 * SMALL_CHUNK)
    local = tmp_path / "par.bin"
    local.write_bytes(data)
    async with make_client(cloud, user, AsyncCloud) as sdk:
        sdk.parallel_chunks = 3
        cloud.server.cloud.faults.latency = 0.2  # every request takes 0.2 s at least
        f = await sdk.upload(local, V, chunked=True)
    assert f.checksum == hashlib.sha256(data).hexdigest()
    spans = requests(caplog, r"POST /cloud/1/upload/\S+ -> 201")
    assert len(spans) == 10
    assert max_overlap(spans) == 3


def test_upload_errors(any_sdk: Any, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        any_sdk.upload(io.BytesIO(b"x"), f"{V}/missing", name="a")
    with pytest.raises(FileNotFoundError):
        any_sdk.upload(str(tmp_path / "absent.bin"), V)
    with pytest.raises(ValueError):
        any_sdk.upload(io.BytesIO(b"x"), V)  # a file object without a name needs one


def test_download_to_path_and_file_object_with_progress(any_sdk: Any, tmp_path: Path) -> None:
    data = payload(3 * 1024 * 1024 + 5)
    f = any_sdk.upload(io.BytesIO(data), V, name="d.bin")
    seen: list[tuple[int, int]] = []
    meta = any_sdk.download(file_or_path=f.path, dest=str(tmp_path / "d.bin"),
                            progress=lambda d, t: seen.append((d, t)))
    assert isinstance(meta, CloudFile) and meta.checksum == f.checksum
    assert (tmp_path / "d.bin").read_bytes() == data
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    buf = io.BytesIO(b"header:")
    buf.seek(0, os.SEEK_END)
    any_sdk.download(f, buf)
    assert buf.getvalue() == b"header:" + data
    assert any_sdk.fetch_range(f, 10, 5) == (data[10:15], f.checksum)
    assert any_sdk.fetch_range(f.path, len(data) - 3) == (data[-3:], f.checksum)


def test_download_resumes_a_partial_file(any_sdk: Any, tmp_path: Path) -> None:
    data = payload(2 * 1024 * 1024 + 77)
    f = any_sdk.upload(io.BytesIO(data), V, name="r.bin")
    dest = tmp_path / "r.bin"
    dest.write_bytes(data[:1_000_000])
    seen: list[int] = []
    any_sdk.download(f, dest, progress=lambda d, t: seen.append(d))
    assert dest.read_bytes() == data
    assert seen[0] == 1_000_000  # the kept bytes were not fetched again
    # A partial file whose bytes differ from the cloud's: detected, fetched again whole.
    dest.write_bytes(b"X" * 1000)
    any_sdk.download(f, dest)
    assert dest.read_bytes() == data
    # Longer than the cloud's file: started over.
    dest.write_bytes(data + b"trailing")
    any_sdk.download(f, dest)
    assert dest.read_bytes() == data
    # resume=False always starts from zero.
    dest.write_bytes(data[:10])
    seen.clear()
    any_sdk.download(f, dest, progress=lambda d, t: seen.append(d), resume=False)
    assert dest.read_bytes() == data and seen[0] == 0


def test_download_errors(any_sdk: Any, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        any_sdk.download(f"{V}/nope.bin", str(tmp_path / "x"))
    with pytest.raises(BadRequestError):
        any_sdk.download(V, str(tmp_path / "y"))


def test_download_retries_a_failing_request(cloud: CloudFixture, sdk: Cloud,
                                            tmp_path: Path) -> None:
    data = payload(70_000)
    f = sdk.upload(io.BytesIO(data), V, name="x.bin")
    cloud.server.cloud.faults.fail("download", 503, times=2, retry_after=0)
    sdk.download(f, tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == data


def test_a_download_broken_off_while_the_file_is_replaced_gets_the_new_file(
        cloud: CloudFixture, user: User, any_sdk: Any, tmp_path: Path) -> None:
    """The body breaks off after 2 MiB; meanwhile the file is replaced by one shorter
    than what was received. The resumed request's If-Range names the old content, so the
    server sends the new file whole (a plain Range would be a 416) and the download
    starts over with it."""
    MiB = 1 << 20
    old, new = payload(3 * MiB + 11), payload(MiB // 2, seed=8)
    f = any_sdk.upload(io.BytesIO(old), V, name="swap.bin")
    cloud.server.cloud.faults.drop_response("download", after_bytes=2 * MiB)
    seen: list[tuple[int, int]] = []
    replaced: list[dict[str, Any]] = []

    def replace_once(done: int, total: int) -> None:
        if done and not replaced:  # the first MiB of the old content is in
            replaced.append(upload(user, f"{V}/swap.bin", new))
        seen.append((done, total))

    meta = any_sdk.download(f, tmp_path / "swap.bin", progress=replace_once)
    assert cloud.server.cloud.faults.injected["drop_response"] == 1
    assert (tmp_path / "swap.bin").read_bytes() == new
    assert isinstance(meta, CloudFile) and (meta.size, meta.checksum) == (len(new), sha256(new))
    assert replaced and seen[-1] == (len(new), len(new))
