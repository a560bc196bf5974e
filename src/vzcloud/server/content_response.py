"""One function that answers with a file's current content: whole (200) or one byte
range (206), for every endpoint that streams a file row's blob (playlist item content,
public share content).

It reuses ``content.BlobFileResponse`` (Starlette's FileResponse with 1 MiB reads:
Range, If-Range, HEAD) and refuses a bad Range header with our JSON errors before the
response starts: 400 when malformed, 416 with ``Content-Range: bytes */size`` when outside
the file. Headers: ``Content-Type`` = the file's mimeType, ``ETag`` = the quoted checksum
(so ``If-Range`` resumes only the same content), ``Last-Modified`` = versionCreated. A
Range with an ``If-Range`` that names other content is ignored before that check: the
whole current file is sent (200), as RFC 9110 wants, never a 416 for a range that only
lies outside the new content.

A small blob (up to ``PRELOAD_MAX`` bytes: a mount's block cache fetches many) is read
whole in the handler's worker thread and served from memory by the same response class:
Starlette would otherwise open, seek, read and close it in four more thread hops, which
cost more than the bytes. Likewise one range of up to ``RANGE_PRELOAD_MAX`` bytes of a
larger blob (a mount's block fetch: 1 to 4 MiB) is ``pread`` in the handler's thread and
sent in one piece, when Starlette would answer that range (a GET without ``If-Range``).
"""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

from starlette.responses import (
    FileResponse,
    JSONResponse,
    MalformedRangeHeader,
    RangeNotSatisfiable,
    Response,
)

from vzcloud.api import errors as E
from vzcloud.server.app import Ctx, error_response
from vzcloud.server.content import DEFAULT_MIME_TYPE, BlobFileResponse

PRELOAD_MAX = 1 << 20  # bytes: blobs up to this size are served from memory
RANGE_PRELOAD_MAX = 8 << 20  # bytes: one range up to this size is served from memory


class _InMemoryFile:
    """The async file methods FileResponse uses, over bytes already read: the file's
    bytes from offset ``base`` on."""

    def __init__(self, data: bytes, base: int = 0) -> None:
        self._buf = io.BytesIO(data)
        self._base = base

    async def read(self, size: int = -1) -> bytes:
        return self._buf.read(size)

    async def seek(self, offset: int) -> int:
        if offset < self._base:
            raise ValueError(f"offset {offset} is before the bytes held ({self._base})")
        return self._buf.seek(offset - self._base) + self._base


class PreloadedBlobResponse(BlobFileResponse):
    """``BlobFileResponse`` (same Range, If-Range and HEAD handling, same headers) over
    the blob's bytes read beforehand."""

    def __init__(self, data: bytes, path: Path, base: int | None = None, **kwargs: Any,
                 ) -> None:
        """``data``: the whole blob, or (``base`` given) the one range asked, from
        ``base`` on, which is then sent in one piece."""
        super().__init__(path, **kwargs)
        self._data = data
        self._base = base or 0
        if base is not None:  # Starlette sends chunk_size bytes at a time
            self.chunk_size = max(len(data), 1)

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[Any]:
        yield _InMemoryFile(self._data, self._base)


def _read_range(blob: Path, start: int, end: int) -> bytes | None:
    """Bytes ``[start, end)`` of ``blob`` with one ``pread``; None if that fails (the
    response then reads the file itself, and reports what is wrong)."""
    try:
        fd = os.open(blob, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, end - start, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == end - start else None


def _if_range_holds(if_range: str, etag: str, last_modified: str) -> bool:
    """Whether an ``If-Range`` validator names the content about to be sent: its ETag or
    its Last-Modified date, compared exactly; a weak ETag never holds (RFC 9110 13.1.5).
    The same test Starlette's FileResponse makes, so both agree on every request."""
    return not if_range.startswith("W/") and if_range in (etag, last_modified)


def blob_response(
    ctx: Ctx, row: sqlite3.Row, range_header: str | None, *, filename: str | None = None
) -> Response:
    """The content of the file ``row`` (the caller checked it is a live file the caller
    may read). ``filename`` adds ``Content-Disposition: attachment`` with that name."""
    blob = ctx.cloud.blobs.path(row["checksum"])
    try:
        stat = blob.stat()
    except FileNotFoundError:
        raise E.ServerError(f"the content of {row['name']!r} is missing on the server") from None
    etag = f'"{row["checksum"]}"'
    # The blob file may be older than this version (deduplicated content).
    last_modified = formatdate(row["modified"], usegmt=True)
    if_range = ctx.request.headers.get("if-range")
    if range_header is not None and if_range is not None and not _if_range_holds(
            if_range, etag, last_modified):
        # RFC 9110 13.1.5: the Range was for other content, so it is ignored and the whole
        # current file is sent (200), even where the range would lie outside it (no 416).
        range_header = None
    ranges: list[tuple[int, int]] = []
    if range_header is not None:
        try:
            ranges = FileResponse._parse_range_header(range_header, stat.st_size)
        except MalformedRangeHeader as exc:
            raise E.BadRequestError(
                f"invalid Range header {range_header!r}: {exc.content}"
            ) from None
        except RangeNotSatisfiable:
            response: JSONResponse = error_response(  # type: ignore[assignment]
                E.RangeNotSatisfiableError(f"the range is outside the file ({stat.st_size} bytes)")
            )
            response.headers["Content-Range"] = f"bytes */{stat.st_size}"
            return response
    headers = {
        "Content-Type": row["mime_type"] or DEFAULT_MIME_TYPE,
        "ETag": etag,
        "Last-Modified": last_modified,
        "Cache-Control": "private, no-cache",
    }
    response_class: Any = BlobFileResponse
    args: tuple[Any, ...] = (blob,)
    if stat.st_size <= PRELOAD_MAX and ctx.request.method == "GET":
        try:
            whole = blob.read_bytes()
        except OSError:  # served from the file, which reports what is wrong
            pass
        else:
            quick = _whole_or_one_range(whole, ranges, range_header, ctx.request.headers,
                                        headers, filename)
            if quick is not None:
                return quick
            args = (whole, blob)
            response_class = PreloadedBlobResponse
    elif (len(ranges) == 1 and ranges[0][1] - ranges[0][0] <= RANGE_PRELOAD_MAX
          and ctx.request.method == "GET" and "if-range" not in ctx.request.headers
          and ctx.request.headers.get("range") == range_header):
        # Exactly the case where Starlette answers this one range (206), so the bytes
        # held are all it reads.
        start, end = ranges[0]
        data = _read_range(blob, start, end)
        if data is not None:
            args = (data, blob, start)
            response_class = PreloadedBlobResponse
    return response_class(*args, stat_result=stat, filename=filename, headers=headers)


def _whole_or_one_range(
    data: bytes, ranges: list[tuple[int, int]], range_header: str | None,
    request_headers: Any, headers: dict[str, str], filename: str | None,
) -> Response | None:
    """The answer to a GET of a small blob held whole (``data``), as a plain Response
    with the very status, headers and bytes ``BlobFileResponse`` would send: the whole
    file (no Range) or the one range asked (206, no If-Range). Starlette's file response
    costs several times the CPU of such a tiny request (a task group and task to watch
    for a disconnect, an async file, a header copy). None for everything else
    (several ranges, If-Range, a filename): the caller uses the file response then."""
    if filename is not None or "if-range" in request_headers:
        return None
    asked = request_headers.get("range")
    if asked is None:
        return Response(data, headers={**headers, "Accept-Ranges": "bytes"})
    if asked != range_header or len(ranges) != 1:
        return None
    start, end = ranges[0]
    return Response(data[start:end], status_code=206, headers={
        **headers, "Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end - 1}/{len(data)}"})
