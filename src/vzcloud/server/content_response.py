"""One function that answers with a file's current content: whole (200) or one byte
range (206), for every endpoint that streams a file row's blob (playlist item content,
public share content).

It reuses ``content.BlobFileResponse`` (Starlette's FileResponse with 1 MiB reads:
Range, If-Range, HEAD) and refuses a bad Range header with our JSON errors before the
response starts: 400 when malformed, 416 with ``Content-Range: bytes */size`` when outside
the file. Headers: ``Content-Type`` = the file's mimeType, ``ETag`` = the quoted checksum
(so ``If-Range`` resumes only the same content), ``Last-Modified`` = versionCreated.
"""

from __future__ import annotations

import sqlite3
from email.utils import formatdate

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
    if range_header is not None:
        try:
            FileResponse._parse_range_header(range_header, stat.st_size)
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
    return BlobFileResponse(
        blob,
        stat_result=stat,
        filename=filename,
        headers={
            "Content-Type": row["mime_type"] or DEFAULT_MIME_TYPE,
            "ETag": f'"{row["checksum"]}"',
            # The blob file may be older than this version (deduplicated content).
            "Last-Modified": formatdate(row["modified"], usegmt=True),
            "Cache-Control": "private, no-cache",
        },
    )
