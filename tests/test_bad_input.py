"""Bad input, one table: every malformed request gets its precise 4xx and JSON error.

Each row is one request and what it must get: the status, the JSON body's ``error`` code
and a piece of ``error_description`` that names the problem. Rows cover malformed
parameters (numbers, booleans, enums, sort, bounds, repeats, missing ones), JSON bodies
(wrong types, invalid, not an object, null, too deep, lone surrogates, too large),
paths (``..``, ``.``, ``//``, NUL, control characters, over-long names and paths, bytes
that are not UTF-8), things of another account (404, never 403: nothing is revealed),
wrong methods, unknown endpoints, bad ``Range`` headers and bad tokens.

One server serves the whole table (module scope); the server's log must show no
internal error afterwards, and no body may carry a traceback.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from vzcloud.api.endpoints import BASE_PATH
from vzcloud.server.admin import create_client
from vzcloud.server.config import ServerConfig
from vzcloud.server.runner import BackgroundServer

from .conftest import Cloud, User
from .helpers import intent, sha256, upload

NOT_SET: Any = object()
MiB = 1 << 20


@dataclass(frozen=True)
class Bad:
    """One malformed request and the answer it must get.

    ``url`` is relative to ``/cloud/1`` (absolute when it starts with ``//``: relative to
    the server) and is sent byte for byte, unnormalised, when ``raw``. ``{me}``,
    ``{other}``, ``{their_*}`` placeholders in the URL and in JSON strings are filled in
    from the fixture's data."""

    id: str
    method: str
    url: str
    status: int
    error: str
    says: str
    json: Any = NOT_SET
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    auth: bool = True


def _rows() -> list[Bad]:
    md = "/metadata/VZMOBILE"
    intent_ok = "/fileupload/intent?path=/VZMOBILE&name=n.txt&size=1&checksum=" + "a" * 64
    long_name = "a" * 256
    long_path = "/VZMOBILE/" + "/".join(["d" * 200] * 21)
    deep_path = "/VZMOBILE" + "/a" * 300
    uri = "dv-file://{other}:VZMOBILE/theirs.txt"
    inv, nf = "invalid_request", "not_found"
    return [
        # Numbers, booleans, enums and sort in the query.
        Bad("count-text", "GET", md + "?count=abc", 400, inv, "'count' must be a whole number"),
        Bad("count-zero", "GET", md + "?count=0", 400, inv, "'count' must be at least 1"),
        Bad("count-negative", "GET", md + "?count=-1", 400, inv, "'count' must be at least 1"),
        Bad("count-huge", "GET", md + "?count=101", 400, inv, "'count' must be at most 100"),
        Bad("count-float", "GET", md + "?count=1.5", 400, inv, "'count' must be a whole number"),
        Bad("count-superscript", "GET", md + "?count=%C2%B9", 400, inv, "whole number"),
        Bad("count-arabic-digit", "GET", md + "?count=%D9%A3", 400, inv, "whole number"),
        Bad("count-double-minus", "GET", md + "?count=--5", 400, inv, "whole number"),
        Bad("count-overflow", "GET", md + "?count=" + "9" * 30, 400, inv, "whole number"),
        Bad("count-twice", "GET", md + "?count=1&count=2", 400, inv,
            "'count' is given more than once"),
        Bad("page-zero", "GET", md + "?page=0", 400, inv, "'page' must be at least 1"),
        Bad("page-huge", "GET", md + "?page=1000001", 400, inv, "'page' must be at most 1000000"),
        Bad("start-alias-zero", "GET", md + "?start=0", 400, inv, "'page' must be at least 1"),
        Bad("contacts-count-huge", "GET", "/contacts?count=201", 400, inv,
            "'count' must be at most 200"),
        Bad("shares-count-zero", "GET", "/shares?count=0", 400, inv, "'count' must be at least 1"),
        Bad("bool-yes", "GET", md + "?include_deleted=yes", 400, inv,
            "'include_deleted' must be true or false"),
        Bad("bool-purge", "DELETE", "/fops/delete?path=/VZMOBILE/f.txt&purge=1", 400, inv,
            "'purge' must be true or false"),
        Bad("enum-filter", "GET", md + "?filter=files", 400, inv,
            "'filter' must be one of file, folder"),
        Bad("enum-thumbnail-size", "GET", "/thumbnails/abc?size=huge", 400, inv,
            "'size' must be one of xs, s, m, l"),
        Bad("sort-field", "GET", md + "?sort=weight%2Basc", 400, inv, "'sort' must be FIELD+asc"),
        Bad("sort-order", "GET", md + "?sort=name%2Bsideways", 400, inv,
            "'sort' must be FIELD+asc"),
        Bad("sort-contacts-field", "GET", "/contacts?sort=name%2Basc", 400, inv,
            "firstname, lastname, created, modified"),
        Bad("offset-zero", "POST", "/upload/x?checksum=abc&offset=0", 400, inv,
            "'offset' must be at least 1"),
        Bad("size-negative", "GET", intent_ok.replace("size=1", "size=-1"), 400, inv,
            "'size' must be at least 0"),
        Bad("checksum-not-hex", "GET", intent_ok.replace("a" * 64, "xyz"), 400, inv,
            "'checksum' must be the SHA-256"),
        Bad("query-not-utf8", "GET", "/search?query=%ff", 400, inv,
            "URL query is not UTF-8"),
        Bad("query-nul", "GET", "/contacts?query=a%00b", 400, inv,
            "'query' contains a NUL character"),
        Bad("search-syntax", "GET", "/search?query=name:", 400, inv, "invalid search query"),
        Bad("uri-malformed", "DELETE", "/tags?uri=http://example.com/x", 400, inv,
            "invalid item uri"),
        # Missing required parameters.
        Bad("missing-query", "GET", "/search", 400, inv, "missing required parameter 'query'"),
        Bad("missing-size", "GET", "/fileupload/intent?path=/VZMOBILE&name=a&checksum=" + "a" * 64,
            400, inv, "missing required parameter 'size'"),
        Bad("missing-path", "DELETE", "/fops/delete", 400, inv,
            "missing required parameter 'path'"),
        Bad("missing-virtualfolder", "GET", "/trash", 400, inv,
            "missing required parameter 'virtualfolder'"),
        Bad("missing-uri", "DELETE", "/favorites", 400, inv, "missing required parameter 'uri'"),
        Bad("missing-json-name", "POST", "/fops/createfolder", 400, inv,
            "missing required parameter 'name'", json={"path": "/VZMOBILE"}),
        Bad("missing-empty-body", "POST", "/fops/copy", 400, inv,
            "missing required parameter 'src'", content=b""),
        Bad("missing-grant-type", "POST", "/oauth2/token", 400, inv,
            "missing required parameter 'grant_type'", content=b"client_id=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=False),
        # Wrong JSON types.
        Bad("json-path-number", "POST", "/fops/createfolder", 400, inv, "'path' must be a string",
            json={"path": 5, "name": "x"}),
        Bad("json-name-list", "POST", "/fops/createfolder", 400, inv, "'name' must be a string",
            json={"path": "/VZMOBILE", "name": ["x"]}),
        Bad("json-bool-text", "POST", "/fops/copy", 400, inv, "'safe' must be true or false",
            json={"src": "/VZMOBILE/f.txt", "target": "/VZMOBILE/g.txt", "safe": "maybe"}),
        Bad("json-enum", "POST", "/fops/createfolder", 400, inv,
            "'override' must be one of overwrite, modify",
            json={"path": "/VZMOBILE", "name": "x", "override": "sideways"}),
        Bad("json-objlist-text", "POST", "/shares", 400, inv,
            "'resources' must be a list of JSON objects", json={"resources": "x"}),
        Bad("json-int-text", "POST", "/shares", 400, inv, "'expiresIn' must be a whole number",
            json={"resources": [], "expiresIn": "soon"}),
        Bad("json-int-float", "POST", "/shares", 400, inv, "'expiresIn' must be a whole number",
            json={"resources": [], "expiresIn": 1.5}),
        Bad("json-int-bool", "POST", "/shares", 400, inv, "'expiresIn' must be a whole number",
            json={"resources": [], "expiresIn": True}),
        Bad("json-int-negative", "POST", "/shares", 400, inv, "'expiresIn' must be at least 0",
            json={"resources": [], "expiresIn": -1}),
        Bad("json-strlist-numbers", "PUT", "/favorites", 400, inv,
            "'uri' must be a string or a list of strings", json={"uri": [1, 2]}),
        Bad("json-strlist-empty", "PUT", "/favorites", 400, inv, "'uri' needs 1 to 1000 items",
            json={"uri": []}),
        Bad("json-playlist-type", "POST", "/playlists", 400, inv, "'type' must be one of",
            json={"name": "p", "type": "podcast"}),
        Bad("json-empty-name", "POST", "/playlists", 400, inv, "'name' must not be empty",
            json={"name": "", "type": "image"}),
        Bad("json-contact-list", "POST", "/contacts", 400, inv, "'contact' must be a JSON object",
            json=[1]),
        Bad("json-contact-field", "POST", "/contacts", 400, inv,
            "contact field 'firstname' must be a string", json={"firstname": 5}),
        Bad("json-contact-no-version", "PUT", "/contacts/{mine_contact}", 400, inv,
            "needs its current 'version'", json={"firstname": "A"}),
        # Bodies that are not a JSON object.
        Bad("json-invalid", "POST", "/fops/createfolder", 400, inv, "not valid JSON",
            content=b'{"path":'),
        Bad("json-not-utf8", "POST", "/fops/createfolder", 400, inv, "not valid JSON",
            content=b"\xff\xfe\xfa"),
        Bad("json-array", "POST", "/fops/createfolder", 400, inv, "must be a JSON object",
            json=[1, 2]),
        Bad("json-string", "POST", "/fops/createfolder", 400, inv, "must be a JSON object",
            json="x"),
        Bad("json-null", "POST", "/virtualfolder/NEW", 400, inv, "must be a JSON object, not null",
            content=b"null"),
        Bad("json-too-deep", "POST", "/fops/createfolder", 400, inv, "nested too deeply",
            content=b"[" * 100_000),
        Bad("json-lone-surrogate", "POST", "/playlists", 400, inv, "lone UTF-16 surrogate",
            content=b'{"name": "\\ud800", "type": "image"}'),
        Bad("json-surrogate-in-contact", "POST", "/contacts", 400, inv, "lone UTF-16 surrogate",
            content=b'{"tel": [{"number": "\\udfff"}]}'),
        Bad("form-not-utf8", "POST", "/oauth2/token", 400, inv, "not UTF-8", content=b"\xff=\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=False),
        # Oversize bodies.
        Bad("json-oversize", "POST", "/fops/createfolder", 413, "body_too_large",
            "over 1048576 bytes", content=b" " * (MiB + 1)),
        Bad("form-oversize", "POST", "/oauth2/token", 413, "body_too_large", "over 1048576 bytes",
            content=b"a=" + b"b" * MiB, auth=False,
            headers={"Content-Type": "application/x-www-form-urlencoded"}),
        # Paths: traversal, empty, NUL and control characters, lengths, encodings.
        Bad("dotdot-encoded", "GET", md + "/%2e%2e/f.txt", 400, inv, "'..' is not a valid name"),
        Bad("dotdot-raw", "GET", md + "/../f.txt", 400, inv, "'..' is not a valid name", raw=True),
        Bad("dotdot-to-api", "GET", "//cloud/1/../1/account", 404, "no_such_endpoint",
            "no such endpoint", raw=True),
        Bad("dot-encoded", "GET", md + "/%2e", 400, inv, "'.' is not a valid name"),
        Bad("dot-raw", "GET", md + "/./f.txt", 400, inv, "'.' is not a valid name", raw=True),
        Bad("double-slash", "GET", md + "//f.txt", 400, inv, "empty name", raw=True),
        Bad("nul", "GET", md + "/a%00b", 400, inv, "NUL character"),
        Bad("control-char", "GET", md + "/a%01b", 400, inv, "control characters"),
        Bad("newline", "GET", md + "/a%0Ab", 400, inv, "control characters"),
        Bad("delete-char", "GET", md + "/a%7Fb", 400, inv, "control characters"),
        Bad("name-256-bytes", "GET", md + "/" + long_name, 400, inv, "at most 255 bytes"),
        Bad("name-256-utf8-bytes", "GET", md + "/" + "%C3%A9" * 128, 400, inv,
            "at most 255 bytes"),
        Bad("path-over-4096", "GET", "/metadata" + long_path, 400, inv, "longer than 4096 bytes"),
        Bad("path-too-deep", "GET", "/metadata" + deep_path, 400, inv, "deeper than 256 levels"),
        Bad("path-not-utf8", "GET", md + "/a%ffb", 400, inv, "URL path is not UTF-8"),
        Bad("download-dotdot", "GET", "/files/VZMOBILE/%2e%2e/f.txt", 400, inv,
            "'..' is not a valid name"),
        Bad("tags-nul", "GET", "/tags/VZMOBILE/%00", 400, inv, "NUL character"),
        Bad("json-name-dotdot", "POST", "/fops/createfolder", 400, inv, "'..' is not a valid name",
            json={"path": "/VZMOBILE", "name": ".."}),
        Bad("json-name-slash", "POST", "/fops/createfolder", 400, inv, "cannot contain '/'",
            json={"path": "/VZMOBILE", "name": "a/b"}),
        Bad("json-name-blank", "POST", "/fops/createfolder", 400, inv, "only white space",
            json={"path": "/VZMOBILE", "name": "   "}),
        Bad("json-name-tab", "POST", "/fops/createfolder", 400, inv, "control characters",
            json={"path": "/VZMOBILE", "name": "a\tb"}),
        Bad("json-path-dotdot", "POST", "/fops/move", 400, inv, "'..' is not a valid name",
            json={"src": "/VZMOBILE/f.txt", "target": "/VZMOBILE/../MyComputer/f.txt"}),
        Bad("json-path-relative", "POST", "/fops/copy", 400, inv, "starts with '/'",
            json={"src": "VZMOBILE/f.txt", "target": "/VZMOBILE/g.txt"}),
        Bad("json-path-long-name", "POST", "/fops/createfolder", 400, inv, "at most 255 bytes",
            json={"path": "/VZMOBILE", "name": long_name}),
        Bad("restore-dotdot", "POST", "/fops/restore", 400, inv, "'..' is not a valid name",
            json={"path": ["/VZMOBILE/.."]}),
        Bad("intent-name-slash", "GET", intent_ok.replace("n.txt", "a%2Fb"), 400, inv,
            "cannot contain '/'"),
        Bad("intent-into-root", "GET", intent_ok.replace("path=/VZMOBILE", "path=/"), 400, inv,
            "cannot be uploaded into '/'"),
        Bad("virtualfolder-dotdot", "POST", "/virtualfolder/%2e%2e", 400, inv,
            "'..' is not a valid name", json={}),
        Bad("trash-dotdot", "DELETE", "/trash?virtualfolder=..", 400, inv,
            "'..' is not a valid name"),
        # Things of another account are 404, exactly like things that do not exist.
        Bad("other-path", "GET", "/metadata/VZMOBILE/theirs.txt", 404, nf, "no such file"),
        Bad("other-download", "GET", "/files/VZMOBILE/theirs.txt", 404, nf, "no such file"),
        Bad("other-uri-tag", "PUT", "/tags", 404, nf, "no such file",
            json={"uri": uri, "Tags": "mine"}),
        Bad("other-uri-untag", "DELETE", "/tags?uri=" + uri, 404, nf, "no such file"),
        Bad("other-uri-favorite", "PUT", "/favorites", 404, nf, "no such file",
            json={"uri": [uri]}),
        Bad("other-uri-share", "POST", "/shares", 404, nf, "no such file",
            json={"resources": [{"name": "t", "type": "file", "location": uri}]}),
        Bad("other-playlist", "GET", "/playlists/{their_playlist}", 404, nf, "no such playlist"),
        Bad("other-playlist-delete", "DELETE", "/playlists/{their_playlist}", 404, nf,
            "no such playlist"),
        Bad("other-contact", "PUT", "/contacts/{their_contact}", 404, nf, "no such contact",
            json={"firstname": "x", "version": 1}),
        Bad("other-contact-delete", "DELETE", "/contacts/{their_contact}", 404, nf,
            "no such contact"),
        Bad("other-share", "DELETE", "/shares/{their_share}", 404, nf, "no such share"),
        Bad("other-upload", "POST", "/upload/{their_upload}?checksum=" + "a" * 64, 404, nf,
            "no upload session", content=b"x"),
        Bad("other-commit", "POST", "/commit/{their_upload}", 404, nf, "no upload session"),
        Bad("other-thumbnail", "GET", "/thumbnails/{their_content_token}", 404, nf,
            "no file with content token"),
        # Methods and endpoints.
        Bad("delete-account", "DELETE", "/account", 405, "method_not_allowed",
            "DELETE is not allowed here"),
        Bad("patch-metadata", "PATCH", md, 405, "method_not_allowed", "PATCH is not allowed here"),
        Bad("get-copy", "GET", "/fops/copy", 405, "method_not_allowed", "use POST"),
        Bad("put-upload", "PUT", "/upload/x", 405, "method_not_allowed", "use POST"),
        Bad("post-openapi", "POST", "/openapi.json", 405, "method_not_allowed", "use GET"),
        Bad("unknown", "GET", "/nope", 404, "no_such_endpoint", "no such endpoint: /cloud/1/nope"),
        Bad("metadata-suffix", "GET", "/metadataX", 404, "no_such_endpoint", "no such endpoint"),
        Bad("other-api-version", "GET", "//cloud/2/account", 404, "no_such_endpoint",
            "no such endpoint"),
        Bad("server-root", "GET", "//", 404, "no_such_endpoint", "no such endpoint"),
        # Range headers.
        Bad("range-garbage", "GET", "/files/VZMOBILE/f.txt", 400, inv, "invalid Range header",
            headers={"Range": "bytes=abc"}),
        Bad("range-reversed", "GET", "/files/VZMOBILE/f.txt", 400, inv, "invalid Range header",
            headers={"Range": "bytes=5-2"}),
        Bad("range-unit", "GET", "/files/VZMOBILE/f.txt", 400, inv, "invalid Range header",
            headers={"Range": "items=0-1"}),
        Bad("range-outside", "GET", "/files/VZMOBILE/f.txt", 416, "range_not_satisfiable",
            "outside the file (10 bytes)", headers={"Range": "bytes=100-200"}),
        Bad("range-empty-suffix", "GET", "/files/VZMOBILE/f.txt", 416, "range_not_satisfiable",
            "outside the file", headers={"Range": "bytes=-0"}),
        # Tokens.
        Bad("token-garbage", "GET", "/account", 401, "invalid_token", "token",
            headers={"Authorization": "Bearer not-a-token"}, auth=False),
        # Only content URLs take the token in the query: elsewhere it is not there at all.
        Bad("token-in-query-not-content", "GET", "/account?access-token={my_token}", 401,
            "invalid_request", "missing access token", auth=False),
    ]


ROWS = _rows()


@dataclass
class World:
    """The table's server: two users and things of the other one to reach for."""

    cloud: Cloud
    me: User
    other: User
    values: dict[str, str]


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    errors = _Errors()
    logger = logging.getLogger("vzcloud.server")
    logger.addHandler(errors)
    server = BackgroundServer(ServerConfig(data_dir=tmp_path_factory.mktemp("bad") / "c")).start()
    cloud = Cloud(server, create_client(server.cloud, redirect_uri="http://127.0.0.1:9/cb"))
    me, other = cloud.new_user("alice"), cloud.new_user("mallory")
    upload(me, "/VZMOBILE/f.txt", b"0123456789")
    theirs = upload(other, "/VZMOBILE/theirs.txt", b"their secret")
    playlist = other.http.post("/playlists", json={"name": "p", "type": "image"}).json()
    contact = other.http.post("/contacts", json={"firstname": "T"}).json()
    mine = me.http.post("/contacts", json={"firstname": "M"}).json()
    share = other.http.post("/shares", json={"resources": [{
        "name": "theirs.txt", "type": "file", "location": theirs["uri"]}]}).json()
    upload_url = intent(other, "/VZMOBILE/up.txt", 1, sha256(b"x")).json()[
        "uploadurls"]["uploadurl"]
    values = {
        "me": me.user_id, "other": other.user_id, "my_token": me.access_token,
        "their_playlist": playlist["uid"], "their_contact": contact["id"],
        "mine_contact": mine["id"], "their_share": share["uid"],
        "their_upload": httpx.URL(upload_url).path.rsplit("/", 1)[1],
        "their_content_token": theirs["contentToken"],
    }
    try:
        yield World(cloud, me, other, values)
    finally:
        me.http.close()
        other.http.close()
        server.stop()
        logger.removeHandler(errors)
    # No row may have produced an internal error, even one the client did not see.
    assert [r.getMessage() for r in errors.records] == []


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values) if "{" in value else value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _send_raw(world: World, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Send the request line exactly as given (httpx would normalise ``..`` and ``.``)."""
    host, port = httpx.URL(world.cloud.url).host, httpx.URL(world.cloud.url).port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_request(world: World, row: Bad) -> None:
    url = _fill(row.url, world.values)
    target = url[1:] if url.startswith("//") else BASE_PATH + url
    headers = dict(row.headers)
    if row.auth:
        headers["Authorization"] = f"Bearer {world.me.access_token}"
    if row.raw:
        status, resp_headers, body = _send_raw(world, row.method, target, headers)
    else:
        kwargs: dict[str, Any] = {"headers": headers}
        if row.json is not NOT_SET:
            kwargs["json"] = _fill(row.json, world.values)
        elif row.content is not None:
            kwargs["content"] = row.content
        r = httpx.request(row.method, world.cloud.url + target, timeout=30, **kwargs)
        status, resp_headers, body = r.status_code, dict(r.headers), r.content
    assert status == row.status, (status, body[:300])
    assert resp_headers.get("content-type") == "application/json", resp_headers
    answer = json.loads(body)
    assert answer["error"] == row.error, answer
    assert row.says.lower() in answer["error_description"].lower(), answer
    assert "Traceback" not in body.decode("utf-8", "replace")
    if row.status == 416:
        assert resp_headers["content-range"] == "bytes */10"


def test_oversize_body_without_content_length(world: World) -> None:
    """A chunked body is counted as it arrives: refused once past the limit."""
    def pieces() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * (128 * 1024)

    r = world.me.http.post("/fops/createfolder", content=pieces(),
                           headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large", r.text


def test_table_leaves_everything_as_it_was(world: World) -> None:
    """The refused requests changed nothing: the files of both users are intact."""
    assert world.me.http.get("/files/VZMOBILE/f.txt").content == b"0123456789"
    assert world.other.http.get("/files/VZMOBILE/theirs.txt").content == b"their secret"
    names = [f["name"] for f in world.me.http.get("/metadata/VZMOBILE").json()["folder"]["file"]]
    assert names == ["f.txt"]


def test_nfc_and_nfd_spellings_name_the_same_item(world: World) -> None:
    """Unicode tricks: ``é`` composed (NFC) and decomposed (NFD) are one name, stored NFC,
    so a look-alike second entry cannot be created next to the first."""
    nfd = "cafe\u0301"
    r = world.me.http.post("/fops/createfolder", json={"path": "/VZMOBILE", "name": nfd})
    assert r.status_code == 201 and r.json()["folder"]["name"] == "caf\u00e9", r.text
    r = world.me.http.get("/metadata/VZMOBILE/caf%C3%A9")
    assert r.status_code == 200
    r = world.me.http.get("/metadata/VZMOBILE/cafe%CC%81")
    assert r.status_code == 200 and r.json()["folder"]["name"] == "caf\u00e9"
    r = world.me.http.post("/fops/createfolder", json={"path": "/VZMOBILE", "name": "caf\u00e9"})
    assert r.status_code == 409, r.text
    world.me.http.delete("/fops/delete", params={"path": "/VZMOBILE/caf\u00e9", "purge": "true"})
