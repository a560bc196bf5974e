"""GET /thumbnails/{contentToken}?size=xs|s|m|l: a JPEG thumbnail of an image file.

The content token names a file of the caller's account (404 otherwise, also while the
file is in the trash); the thumbnail is of its current version. A file whose MIME type is
not ``image/*``, or an image Pillow cannot decode (SVG, HEIC, a corrupt file), is a 415.

The thumbnail fits a square bounding box (xs 64, s 128, m 256, l 512 pixels), keeps the
aspect ratio, never enlarges, honours the EXIF orientation and flattens transparency onto
white. Thumbnails are cached as ``<data dir>/thumbnails/<checksum>-<size>.jpg``: keyed by
content, so a new version gets a new thumbnail and identical content shares one. The
``ETag`` is the same key, and ``If-None-Match`` with it answers 304.

Decoding is bounded: at most ``MAX_PARALLEL_DECODES`` images are decoded at once (large
photos take tens of MB each) and Pillow's decompression-bomb limit stays in force.
Not done: cached thumbnails of content no longer stored are not removed (they are small;
deleting the ``thumbnails`` folder is always safe).
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from starlette.responses import Response

from vzcloud.api.errors import NotFoundError, ServerError, UnsupportedMediaTypeError
from vzcloud.server.app import Ctx
from vzcloud.server.routes import handler

log = logging.getLogger("vzcloud.server.thumbnails")

SIZES = {"xs": 64, "s": 128, "m": 256, "l": 512}
JPEG_QUALITY = 85
MAX_PARALLEL_DECODES = 2
_decoding = threading.BoundedSemaphore(MAX_PARALLEL_DECODES)


def render_thumbnail(source: Path, box: int) -> bytes:
    """A JPEG of the image at ``source`` fitting ``box`` x ``box`` pixels.

    Raises UnsupportedMediaTypeError when Pillow cannot decode it.
    """
    with _decoding:
        try:
            with Image.open(source) as image:
                # JPEG: let the decoder scale down by 2/4/8 while decoding (far less work).
                image.draft("RGB", (box, box))
                oriented = ImageOps.exif_transpose(image)
                oriented.thumbnail((box, box), Image.Resampling.LANCZOS)
                flat = _flatten(oriented)
                out = io.BytesIO()
                flat.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
                return out.getvalue()
        # The bytes are the user's, not ours: whatever a malformed or hostile file makes
        # the decoder raise means "not an image we can read", never a server error.
        except Exception as exc:
            log.info("cannot make a thumbnail of %s: %r", source.name, exc)
            raise UnsupportedMediaTypeError(
                "this image cannot be decoded, so it has no thumbnail"
            ) from None


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (JPEG has no alpha)."""
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def cached_thumbnail(cache_dir: Path, blob: Path, checksum: str, size: str) -> bytes:
    """The thumbnail of ``blob`` at ``size``, made and cached on first use."""
    target = cache_dir / f"{checksum}-{size}.jpg"
    try:
        return target.read_bytes()
    except FileNotFoundError:
        pass
    if not blob.exists():
        raise ServerError(f"the content {checksum} is missing on the server")
    data = render_thumbnail(blob, SIZES[size])
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Written aside then renamed, so a reader never sees half a thumbnail; two requests
    # racing to make the same one both succeed and the last rename wins (same bytes).
    partial = cache_dir / f".{secrets.token_hex(8)}.part"
    partial.write_bytes(data)
    os.replace(partial, target)
    return data


@handler("thumbnail")
def thumbnail(ctx: Ctx, args: dict[str, Any]) -> Response:
    store = ctx.store
    with store.tx() as db:
        row = db.execute(
            "SELECT * FROM items WHERE content_token=? AND account_id=? AND is_folder=0",
            (args["contentToken"], ctx.account.id),
        ).fetchone()
        if row is None or not store.is_live(row["id"]):
            raise NotFoundError(f"no file with content token {args['contentToken']}")
    mime_type = row["mime_type"] or "application/octet-stream"
    if not mime_type.startswith("image/"):
        raise UnsupportedMediaTypeError(f"{row['name']} is {mime_type}, not an image")
    etag = f'"{row["checksum"]}-{args["size"]}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag in (t.strip() for t in ctx.request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    data = cached_thumbnail(ctx.cloud.config.data_dir / "thumbnails",
                            ctx.cloud.blobs.path(row["checksum"]), row["checksum"], args["size"])
    return Response(data, media_type="image/jpeg", headers=headers)
