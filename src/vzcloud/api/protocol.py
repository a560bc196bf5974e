"""Requests and responses of the Cloud API as plain data: built and parsed, never sent.

Everything between "call endpoint X with these arguments" and "here is its result (or
its error)" that does not touch a socket lives here, so the sync ``Cloud``, the async
``AsyncCloud`` and any other transport share it byte for byte:

- ``build_request`` turns an endpoint of ``vzcloud.api.endpoints`` and its arguments by
  wire name into an ``HttpRequest`` (method, absolute URL with encoded query, headers,
  body);
- ``parse_response`` turns an ``HttpResponse`` (status, headers, body) into the result
  model named by ``Endpoint.result``, or raises the ``CloudError`` that
  ``vzcloud.api.errors.error_for_status`` maps its status to (with ``Retry-After``).

Encoding rules (``../shared/reference/cloud-api.md``): a ``{path}`` placeholder takes a
whole cloud path with its slashes kept and every other character percent-encoded; any
other placeholder is one segment (slashes encoded too). Query values are percent-encoded
with nothing left bare, so a sort's ``name+asc`` travels as ``name%2Basc``; booleans are
``true``/``false``; a list travels as a repeated parameter (query) or a JSON array.
Arguments that are ``None`` are not sent.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from vzcloud.api import errors as E
from vzcloud.api.endpoints import BASE_PATH, BY_NAME, Endpoint, Param
from vzcloud.api.models import (
    Account,
    CloudFile,
    CloudFolder,
    Contact,
    FolderListing,
    FullviewResult,
    Model,
    Playlist,
    PlaylistAdd,
    PlaylistItem,
    Share,
    SharesCursor,
    SharesResult,
    Token,
    UploadIntent,
)

USER_AGENT = "vzcloud-python"
ETAG_HEADER = "X-Header-ETag"


class StreamBody(Protocol):
    """A request body too large to hold in memory; the transport streams it.

    ``length`` is its exact size in bytes (sent as ``Content-Length``). How the bytes
    are produced is the transport's business (``vzcloud.sdk.transfer.FileSlice``).
    """

    @property
    def length(self) -> int: ...


Body = bytes | StreamBody


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request, ready to send. ``url`` is absolute with its query encoded."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: Body | None = None
    endpoint: str = ""  # the endpoint name, for logs and tests


@dataclass
class HttpResponse:
    """One HTTP response. ``headers`` keys are lower case.

    ``stream`` is set by a transport that has not read the body yet (a streamed 2xx
    download); ``content`` is then empty and the transport owns the open stream.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    stream: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


# Building requests -----------------------------------------------------------------------


def wire_value(param: Param, value: Any) -> str:
    """One scalar argument as it travels in a query, form, header or URL segment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if param.kind == "sort" and isinstance(value, tuple | list):
        field_name, order = value
        return f"{field_name}+{order}"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_json()
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _query_pairs(param: Param, value: Any) -> list[tuple[str, str]]:
    if param.kind == "strlist" and isinstance(value, list | tuple):
        return [(param.name, wire_value(param, v)) for v in value]
    return [(param.name, wire_value(param, value))]


def encode_query(pairs: list[tuple[str, str]]) -> str:
    """``a=1&b=x%2By``: every reserved character percent-encoded (``+`` as ``%2B``)."""
    return urlencode(pairs, quote_via=quote, safe="")


def expand_path(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders: ``{path}`` keeps its slashes, others are one segment.

    Raises BadRequestError for a cloud path that is not absolute (it would otherwise
    silently name another endpoint: ``/metadata`` + ``VZMOBILE`` = ``/metadataVZMOBILE``).
    """
    out = template
    for name, value in values.items():
        if name == "path":
            if not value.startswith("/"):
                raise E.BadRequestError(f"invalid path {value!r}: a cloud path starts with '/'")
            encoded = quote(value, safe="/")
        else:
            if value == "":
                raise E.BadRequestError(f"parameter {name!r} must not be empty")
            encoded = quote(value, safe="")
        out = out.replace("{" + name + "}", encoded)
    return out


def build_request(
    endpoint: Endpoint | str,
    args: Mapping[str, Any],
    base_url: str,
    access_token: str | None = None,
    *,
    url: str | None = None,
    content: Body | None = None,
) -> HttpRequest:
    """The request that calls ``endpoint`` with ``args`` (keys are wire names).

    ``base_url`` is ``scheme://host[:port]`` (``BASE_PATH`` is added). ``url`` replaces
    the path template with an absolute URL the server handed out (upload and commit
    URLs); declared query arguments are then appended to its own query, except those it
    already carries. ``content`` is the body of a ``body="bytes"`` endpoint. Arguments
    that are not declared parameters raise TypeError (a programming error, not a wire one).
    """
    ep = BY_NAME[endpoint] if isinstance(endpoint, str) else endpoint
    declared = {p.name for p in ep.params}
    unknown = set(args) - declared
    if unknown:
        raise TypeError(f"{ep.name}: unknown argument(s) {', '.join(sorted(unknown))}")

    path_values: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    json_body: dict[str, Any] = {}
    whole_body: Any = None
    form: list[tuple[str, str]] = []
    for param in ep.params:
        value = args.get(param.name)
        if value is None:
            if param.where == "path" and param.required and url is None:
                raise E.BadRequestError(f"missing required parameter {param.name!r}")
            continue
        if param.where == "path":
            path_values[param.name] = wire_value(param, value)
        elif param.where == "query":
            query.extend(_query_pairs(param, value))
        elif param.where == "header":
            headers[param.name] = wire_value(param, value)
        elif param.where == "json":
            json_body[param.name] = _json_value(value)
        elif param.where == "body":
            whole_body = _json_value(value)
        elif param.where == "form":
            form.append((param.name, wire_value(param, value)))

    if url is None:
        for param in ep.path_params:  # a defaulted placeholder, e.g. metadata's "/"
            if param.name not in path_values and param.default is not None:
                path_values[param.name] = str(param.default)
        target = base_url.rstrip("/") + BASE_PATH + expand_path(ep.path, path_values)
    else:
        present = {k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
        query = [(k, v) for k, v in query if k not in present]
        target = url
    if query:
        target += ("&" if "?" in target else "?") + encode_query(query)

    if ep.auth in ("bearer", "bearer_or_query") and access_token:
        headers["Authorization"] = f"Bearer {access_token}"

    body: Body | None = None
    if ep.body == "json":
        body = json.dumps(whole_body if whole_body is not None else json_body).encode()
        headers["Content-Type"] = "application/json"
    elif ep.body == "form":
        body = encode_query(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif ep.body == "bytes":
        body = content if content is not None else b""
        headers["Content-Type"] = "application/octet-stream"
        length = len(body) if isinstance(body, bytes) else body.length
        headers["Content-Length"] = str(length)
    return HttpRequest(ep.method, target, headers, body, ep.name)


def content_url(endpoint: Endpoint | str, args: Mapping[str, Any], base_url: str,
                access_token: str) -> str:
    """A GET URL for a ``bearer_or_query`` endpoint that works without headers
    (``?access-token=...``), e.g. what ``download_url`` hands to a browser."""
    ep = BY_NAME[endpoint] if isinstance(endpoint, str) else endpoint
    if ep.auth != "bearer_or_query":
        raise ValueError(f"{ep.name} does not accept a token in its URL")
    req = build_request(ep, args, base_url)
    sep = "&" if "?" in req.url else "?"
    return req.url + sep + encode_query([("access-token", access_token)])


def authorize_url(base_url: str, client_id: str, redirect_uri: str, state: str | None = None) -> str:
    """Where to send the user's browser to start the OAuth 2.0 authorization-code flow."""
    args = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code",
            "state": state}
    return build_request("authorize", args, base_url).url


# Parsing responses -----------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent
    or unreadable (never negative)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def decode_json(content: bytes) -> Any:
    """The decoded JSON body, or None when it is empty or not JSON."""
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def error_for_response(resp: HttpResponse) -> E.CloudError:
    """The CloudError a failed response means (status, JSON body, Retry-After)."""
    body = decode_json(resp.content)
    err = E.error_for_status(resp.status, body, parse_retry_after(resp.header("Retry-After")))
    if resp.status == 205 and resp.header("X-Error"):
        err.error = resp.header("X-Error") or err.error
    return err


def _obj(body: Any, key: str | None = None) -> dict[str, Any]:
    """``body[key]`` when present (the wire often wraps an object), else ``body``."""
    if not isinstance(body, dict):
        raise E.CloudError(f"unexpected response body: {type(body).__name__}", status=None,
                           error="bad_response")
    inner = body.get(key) if key else None
    return inner if isinstance(inner, dict) else body


def _list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _dig(body: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _file_or_folder(body: Any) -> CloudFile | CloudFolder:
    if isinstance(body, dict) and isinstance(body.get("file"), dict):
        return CloudFile.from_json(body["file"])
    return CloudFolder.from_json(_obj(body, "folder"))


def _metadata(body: Any) -> FolderListing | CloudFile:
    """A folder's listing (``{"folder": {"file", "folder"}}``) or a file (``{"file"}``).

    The listed folder's own attributes (when the server sends them next to its
    ``file``/``folder`` lists) are kept in the listing's ``extra``."""
    if isinstance(body, dict) and isinstance(body.get("file"), dict):
        return CloudFile.from_json(body["file"])
    folder = _obj(body, "folder")
    listing = FolderListing.from_wire(folder)
    listing.extra = {k: v for k, v in folder.items() if k not in ("file", "folder")}
    return listing


def _shares(body: Any) -> SharesResult:
    inner = _obj(body, "shares")
    links = _list(inner.get("links"))
    cursor = SharesCursor.from_json({"links": links})
    for link in cursor.links:
        if link.rel == "next" and link.link:
            query = dict(parse_qsl(urlsplit(link.link).query))
            cursor.cursor = query.get("cursor") or link.link
    if cursor.cursor is None and isinstance(inner.get("cursor"), str):
        cursor.cursor = inner["cursor"]
    return SharesResult(shares=[Share.from_json(s) for s in _list(inner.get("share"))],
                        shares_cursor=cursor)


def _playlist_add(body: Any) -> list[PlaylistAdd]:
    out = []
    for item in _list(_obj(body).get("paths")):
        out.append(PlaylistAdd(path=item) if isinstance(item, str) else PlaylistAdd.from_json(item))
    return out


def _tags(body: Any) -> list[str]:
    raw = _obj(body).get("Tags")
    if isinstance(raw, list):
        return [str(t) for t in raw]
    return [t.strip() for t in str(raw or "").split(",") if t.strip()]


def _playlist(body: Any) -> Playlist | None:
    if not isinstance(body, dict):  # an empty 200 (update_playlist_definition)
        return None
    return Playlist.from_json(_obj(body, "playlistDefinition"))


# Endpoint.result -> how a successful response body becomes the result. Every result name
# used in the endpoint table has an entry (a test checks it).
RESULT_PARSERS: dict[str, Callable[[Any], Any]] = {
    "none": lambda body: None,
    "html": lambda body: body,
    "redirect": lambda body: body,
    "account": Account.from_json,
    "token": Token.from_json,
    "metadata": _metadata,
    "search": lambda body: FolderListing.from_wire(_obj(body, "searchResults")),
    "trash": lambda body: FolderListing.from_wire(_obj(body, "trashCan")),
    "favorites": lambda body: FolderListing.from_wire(_obj(body, "favorites")),
    "upload_intent": lambda body: UploadIntent.from_json(_obj(body, "uploadurls")),
    # An unchunked upload answers {"file": ...}; a chunk answers with an empty body.
    "upload": lambda body: CloudFile.from_json(body["file"])
    if isinstance(body, dict) and isinstance(body.get("file"), dict) else None,
    "file": lambda body: CloudFile.from_json(_obj(body, "file")),
    "folder": lambda body: CloudFolder.from_json(_obj(body, "folder")),
    "item": _file_or_folder,
    "tags": _tags,
    "share": lambda body: Share.from_json(_obj(body, "share")),
    "shares": _shares,
    "playlists": lambda body: [
        Playlist.from_json(p)
        for p in _list(_dig(body, "playlistDefinitions", "playlistDefinition"))
    ],
    "playlist": _playlist,
    "playlist_items": lambda body: [
        PlaylistItem.from_json(p) for p in _list(_dig(body, "playlist", "playlistElement"))
    ],
    "playlist_add": _playlist_add,
    "contacts": lambda body: [
        Contact.from_json(c)
        for c in _list(_dig(body, "contactsResponse", "account", "addrbook", "contacts",
                            "contact"))
    ],
    "contact": lambda body: Contact.from_json(_obj(body, "contact")),
}


def parse_response(
    endpoint: Endpoint | str, resp: HttpResponse, args: Mapping[str, Any] | None = None
) -> Any:
    """The result of a response to ``endpoint`` called with ``args``, or its CloudError.

    ``bytes`` endpoints return the response itself (the body may still be a stream).
    fullview: 412 = nothing changed since the etag sent (a result with that etag,
    ``changed=False`` and no items); 205 = the etag is too old (OutOfSyncError).
    A body that does not have the declared shape raises CloudError("bad_response").
    """
    ep = BY_NAME[endpoint] if isinstance(endpoint, str) else endpoint
    if ep.name == "fullview" and resp.status == 412:
        return FullviewResult(etag=(args or {}).get(ETAG_HEADER), changed=False)
    if not 200 <= resp.status < 300 or resp.status == 205:
        raise error_for_response(resp)
    if ep.result == "bytes" or resp.stream is not None:
        return resp  # a streamed body is the caller's to read (``sdk.fullview``)
    body = decode_json(resp.content)
    if ep.result == "fullview":
        data = _obj(body, "data")
        listing = FolderListing.from_wire(data)
        return FullviewResult(
            files=listing.files,
            empty_folders=listing.folders,
            etag=resp.header(ETAG_HEADER),
            deleted=[str(p) for p in _list(_dig(data, "deleted", "path"))],
        )
    try:
        return RESULT_PARSERS[ep.result](body)
    except (KeyError, TypeError, ValueError) as exc:
        raise E.CloudError(f"{ep.name}: unexpected response body ({exc})", status=None,
                           error="bad_response") from None
