"""Thumbnails over real HTTP, of real images made with Pillow."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from .conftest import Cloud, User
from .helpers import upload


def _png(width: int, height: int, color: tuple[int, ...] = (200, 30, 30, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(out, "PNG")
    return out.getvalue()


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image


def _thumb(user: User, file: dict[str, Any], **params: Any) -> httpx.Response:
    return user.http.get(f"/thumbnails/{file['contentToken']}", params=params)


@pytest.mark.parametrize(("size", "expected"),
                         [("xs", (64, 38)), ("s", (128, 77)), ("m", (256, 154)),
                          ("l", (512, 307)), (None, (128, 77))])
def test_sizes_fit_their_box(user: User, size: str | None, expected: tuple[int, int]) -> None:
    f = upload(user, "/VZMOBILE/wide.png", _png(1000, 600))
    r = _thumb(user, f, **({"size": size} if size else {}))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    image = _decode(r.content)
    assert image.size == expected
    assert image.getpixel((image.width // 2, image.height // 2))[0] > 150  # still red


def test_small_images_are_not_enlarged_and_alpha_becomes_white(user: User) -> None:
    f = upload(user, "/VZMOBILE/dot.png", _png(20, 10, (0, 0, 0, 0)))
    image = _decode(_thumb(user, f, size="l").content)
    assert image.size == (20, 10)
    assert min(image.getpixel((5, 5))) > 240


def test_exif_orientation_is_applied(user: User) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    out = io.BytesIO()
    Image.new("RGB", (200, 100), (0, 90, 200)).save(out, "JPEG", exif=exif)
    f = upload(user, "/VZMOBILE/phone.jpg", out.getvalue())
    assert _decode(_thumb(user, f, size="s").content).size == (64, 128)


def test_cache_etag_and_new_versions(cloud: Cloud, user: User) -> None:
    f = upload(user, "/VZMOBILE/pic.png", _png(300, 300))
    r = _thumb(user, f, size="xs")
    cached = cloud.server.cloud.config.data_dir / "thumbnails" / f"{f['checksum']}-xs.jpg"
    assert cached.read_bytes() == r.content
    etag = r.headers["etag"]
    assert etag == f'"{f["checksum"]}-xs"'
    r = user.http.get(f"/thumbnails/{f['contentToken']}", params={"size": "xs"},
                      headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    # A new version keeps the content token; its thumbnail is of the new content.
    g = upload(user, "/VZMOBILE/pic.png", _png(300, 150, (0, 200, 0, 255)))
    assert g["contentToken"] == f["contentToken"] and g["checksum"] != f["checksum"]
    r = user.http.get(f"/thumbnails/{f['contentToken']}", params={"size": "xs"},
                      headers={"If-None-Match": etag})
    assert r.status_code == 200 and _decode(r.content).size == (64, 32)


def test_not_an_image_is_415(user: User) -> None:
    text = upload(user, "/VZMOBILE/notes.txt", b"hello")
    r = _thumb(user, text)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    broken = upload(user, "/VZMOBILE/broken.png", b"\x89PNG\r\n\x1a\n but then garbage")
    r = _thumb(user, broken)
    assert r.status_code == 415 and "decode" in r.json()["error_description"]
    truncated = upload(user, "/VZMOBILE/cut.png", _png(400, 400)[:60])
    assert _thumb(user, truncated).status_code == 415


def test_not_found_trash_isolation_and_auth(
    cloud: Cloud, user: User, other_user: User
) -> None:
    f = upload(user, "/VZMOBILE/pic.png", _png(50, 50))
    assert user.http.get("/thumbnails/0123abcd").status_code == 404
    assert other_user.http.get(f"/thumbnails/{f['contentToken']}").status_code == 404
    assert _thumb(user, f, size="xl").status_code == 400
    url = f"{cloud.api}/thumbnails/{f['contentToken']}"
    assert httpx.get(url).status_code == 401
    r = httpx.get(url, params={"access-token": user.access_token, "size": "xs"})
    assert r.status_code == 200 and _decode(r.content).size == (50, 50)
    assert user.http.delete("/fops/delete", params={"path": "/VZMOBILE/pic.png"}).status_code == 200
    assert _thumb(user, f).status_code == 404
