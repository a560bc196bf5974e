"""Every endpoint of the Cloud API, declared once as data.

This table is the single source of the wire contract (``docs/wire-protocol.md`` and
``../shared/reference/cloud-api.md``). It is read by:

- ``vzcloud.api.protocol`` to build requests for the sync and async SDK clients;
- ``vzcloud.server.app`` to route requests and validate their parameters before any
  handler runs (so every endpoint rejects malformed input the same way);
- the OpenAPI generator and the tests that check every endpoint is served.

Paths are relative to the base path ``/cloud/1``. A ``{path}`` placeholder stands for a
whole cloud path (``/VZMOBILE/dir/a.jpg``, slashes included); any other ``{name}`` is one
URL segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vzcloud.api import errors as E

BASE_PATH = "/cloud/1"
DEFAULT_SERVER = "https://api.cloudapi.verizon.com"

Where = Literal["query", "json", "form", "path", "header", "body"]
Kind = Literal[
    "str",  # any non-empty text
    "int",  # decimal integer, bounded by minimum/maximum
    "bool",  # true/false in any letter case (query) or a JSON boolean
    "cloudpath",  # absolute cloud path: /VIRTUALFOLDER/dir/name
    "name",  # one path component
    "sort",  # field+asc|desc with field in choices
    "enum",  # one of choices
    "strlist",  # JSON list of strings (or repeated query parameter)
    "object",  # a JSON object
    "objlist",  # a JSON list of objects
]
Auth = Literal["bearer", "bearer_or_query", "client", "none", "public"]


@dataclass(frozen=True)
class Param:
    """One request parameter.

    ``name`` is the wire name; ``where`` says where it travels. ``body`` means the whole
    JSON body is this one parameter (contacts). ``aliases`` are other wire names old
    clients send for the same parameter (``start`` for ``page``). ``minimum`` and
    ``maximum`` bound an ``int``; for a ``strlist`` ``minimum`` is the fewest items
    (default 1, 0 allows an empty list).
    """

    name: str
    kind: Kind
    where: Where
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    aliases: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Endpoint:
    """One operation: how it is called, what it returns and which errors it declares.

    ``result`` names the response shape (see ``vzcloud.api.protocol``);
    ``bytes`` is raw content, ``html`` a page, ``none`` an empty or ignorable body.
    ``idempotent`` says whether repeating the request after a lost response is safe.
    """

    name: str
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    params: tuple[Param, ...] = ()
    result: str = "none"
    status: int = 200
    errors: tuple[type[E.CloudError], ...] = ()
    idempotent: bool = True
    auth: Auth = "bearer"
    body: Literal["none", "json", "form", "bytes"] = "none"
    doc: str = ""
    extra_statuses: tuple[int, ...] = field(default=())

    @property
    def path_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.where == "path")

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


# Building blocks -------------------------------------------------------------------------

SORT_FIELDS = (
    "name",
    "versionCreated",
    "size",
    "extension",
    "contentType",
    "creationDate",
    "favorite",
)
MAX_COUNT = 100
MAX_PAGE = 1_000_000


def _page(default_count: int = 20, max_count: int = MAX_COUNT) -> tuple[Param, ...]:
    return (
        Param("page", "int", "query", default=1, minimum=1, maximum=MAX_PAGE, aliases=("start",)),
        Param("count", "int", "query", default=default_count, minimum=1, maximum=max_count),
    )


def _sort(fields: tuple[str, ...] = SORT_FIELDS) -> Param:
    return Param("sort", "sort", "query", choices=fields, doc="{field}+{asc|desc}")


_PATH = Param("path", "cloudpath", "path", required=True)
_AUTH_ERRORS: tuple[type[E.CloudError], ...] = (E.UnauthorizedError, E.BadRequestError)
_NF = (*_AUTH_ERRORS, E.NotFoundError)
_CREATE_VERSION = Param("createVersion", "bool", "json", default=False)
_OVERRIDE = Param("override", "enum", "json", choices=("overwrite", "modify"))
_FOPS = (
    Param("src", "cloudpath", "json", required=True),
    Param("target", "cloudpath", "json", required=True),
    Param("safe", "bool", "json", default=False),
    _OVERRIDE,
    Param("conflictsolve", "enum", "json", choices=("copy",)),
)
PLAYLIST_TYPES = ("image", "music", "video", "image-video")


ENDPOINTS: tuple[Endpoint, ...] = (
    # OAuth 2.0 -----------------------------------------------------------------------------
    Endpoint(
        "authorize", "GET", "/oauth2/authorize", auth="none", result="html",
        params=(
            Param("client_id", "str", "query", required=True),
            Param("redirect_uri", "str", "query", required=True),
            Param("response_type", "enum", "query", required=True, choices=("code",)),
            Param("state", "str", "query"),
        ),
        errors=(E.BadRequestError,),
        doc="Login and consent page; its form posts to authorize_submit.",
    ),
    Endpoint(
        "authorize_submit", "POST", "/oauth2/authorize", auth="none", result="redirect",
        body="form", status=302, idempotent=False,
        params=(
            Param("client_id", "str", "form", required=True),
            Param("redirect_uri", "str", "form", required=True),
            Param("response_type", "enum", "form", required=True, choices=("code",)),
            Param("state", "str", "form"),
            # Not required by the router: Deny needs neither, and a missing one on Allow
            # shows the page again with a message rather than a JSON 400.
            Param("username", "str", "form"),
            Param("password", "str", "form"),
            Param("decision", "enum", "form", required=True, choices=("allow", "deny")),
            Param("csrf", "str", "form",
                  doc="Decided: must equal the vzcloud_csrf cookie set by the page (login CSRF)."),
        ),
        errors=(E.BadRequestError, E.UnauthorizedError, E.RateLimitedError),
        doc="Decided: the consent form's target. Redirects to redirect_uri?code=... "
        "or ?error=access_denied; 429 with Retry-After after repeated wrong passwords.",
    ),
    Endpoint(
        "token", "POST", "/oauth2/token", auth="client", result="token", body="form",
        idempotent=False,
        params=(
            Param("grant_type", "enum", "form", required=True,
                  choices=("authorization_code", "refresh_token")),
            Param("code", "str", "form"),
            Param("redirect_uri", "str", "form"),
            Param("refresh_token", "str", "form"),
            Param("client_id", "str", "form"),
            Param("client_secret", "str", "form"),
        ),
        errors=(E.BadRequestError, E.UnauthorizedError),
        doc="Parameters may also travel in the query; client auth may be HTTP Basic.",
    ),
    Endpoint(
        "revoke", "POST", "/oauth2/revoke", auth="client", result="none", body="form",
        params=(
            Param("token", "str", "form", required=True),
            Param("client_id", "str", "form"),
            Param("client_secret", "str", "form"),
        ),
        errors=(E.BadRequestError, E.UnauthorizedError),
        doc="Decided (RFC 7009): revoke an access or refresh token; 200 even if unknown.",
    ),
    # Account and listing -------------------------------------------------------------------
    Endpoint("account", "GET", "/account", result="account", errors=_AUTH_ERRORS),
    Endpoint(
        "metadata", "GET", "/metadata{path}", result="metadata",
        params=(
            Param("path", "cloudpath", "path", default="/"),
            Param("include_deleted", "bool", "query", default=False),
            _sort(),
            *_page(),
            Param("filter", "enum", "query", choices=("file", "folder")),
        ),
        errors=(*_NF, E.GoneError),
        doc="A folder's listing, a file's metadata; '/' lists the virtual folders.",
    ),
    Endpoint(
        "fullview", "GET", "/fullview", result="fullview",
        params=(
            Param("virtualfolder", "name", "query"),
            Param("X-Header-ETag", "str", "header"),
        ),
        errors=(*_NF, E.OutOfSyncError),
        extra_statuses=(205, 412),
        doc="Everything, or with X-Header-ETag the delta since it; 412 = unchanged.",
    ),
    Endpoint(
        "download", "GET", "/files{path}", result="bytes", auth="bearer_or_query",
        # If-Range (RFC 9110): the Range applies only to the content with that ETag.
        params=(_PATH, Param("Range", "str", "header"), Param("If-Range", "str", "header")),
        errors=(*_NF, E.GoneError, E.RangeNotSatisfiableError),
        extra_statuses=(206,),
    ),
    Endpoint(
        "thumbnail", "GET", "/thumbnails/{contentToken}", result="bytes",
        auth="bearer_or_query",
        params=(
            Param("contentToken", "str", "path", required=True),
            Param("size", "enum", "query", default="s", choices=("xs", "s", "m", "l")),
        ),
        errors=(*_NF, E.UnsupportedMediaTypeError),
    ),
    Endpoint(
        "search", "GET", "/search", result="search",
        params=(
            Param("query", "str", "query", required=True),
            Param("virtualfolder", "str", "query", default="VZMOBILE"),
            _sort(),
            *_page(),
        ),
        errors=_NF,
    ),
    # Uploads -------------------------------------------------------------------------------
    Endpoint(
        "upload_intent", "GET", "/fileupload/intent", result="upload_intent",
        idempotent=False,
        params=(
            Param("path", "cloudpath", "query", required=True, doc="parent folder"),
            Param("name", "name", "query", required=True),
            Param("size", "int", "query", required=True, minimum=0),
            Param("checksum", "str", "query", required=True, doc="sha256 hex of the file"),
            Param("chunk", "bool", "query", default=False),
        ),
        errors=(*_NF, E.QuotaExceededError, E.ConflictError),
    ),
    Endpoint(
        "upload", "POST", "/upload/{uploadid}", result="upload", body="bytes", status=201,
        idempotent=True,  # a chunk (or the whole file) replaces the same slot
        params=(
            Param("uploadid", "str", "path", required=True),
            Param("chunk", "bool", "query", default=False),
            Param("checksum", "str", "query", required=True),
            Param("offset", "int", "query", minimum=1, maximum=100_000,
                  doc="1-based chunk number (chunked uploads only)"),
        ),
        errors=(*_NF, E.QuotaExceededError, E.ConflictError),
        doc="Unchunked: 201 {file}. A chunk: 201 with an empty body.",
    ),
    Endpoint(
        "commit", "POST", "/commit/{uploadid}", result="file", status=201, idempotent=False,
        params=(Param("uploadid", "str", "path", required=True),),
        errors=(*_NF, E.QuotaExceededError, E.ConflictError),
    ),
    # File operations -----------------------------------------------------------------------
    Endpoint(
        "create_folder", "POST", "/fops/createfolder", result="folder", body="json",
        status=201, idempotent=False,
        params=(
            Param("path", "cloudpath", "json", required=True, doc="parent folder"),
            Param("name", "name", "json", required=True),
            _OVERRIDE,
        ),
        errors=(*_NF, E.ConflictError),
    ),
    Endpoint("copy", "POST", "/fops/copy", result="item", body="json", params=_FOPS,
             idempotent=False, errors=(*_NF, E.ConflictError, E.QuotaExceededError)),
    Endpoint("move", "POST", "/fops/move", result="item", body="json", params=_FOPS,
             idempotent=False, errors=(*_NF, E.ConflictError)),
    Endpoint("rename", "POST", "/fops/rename", result="item", body="json", params=_FOPS,
             idempotent=False, errors=(*_NF, E.ConflictError)),
    Endpoint(
        "delete", "DELETE", "/fops/delete", result="none", idempotent=False,
        params=(
            Param("path", "cloudpath", "query", required=True),
            Param("purge", "bool", "query", default=False),
        ),
        errors=_NF,
    ),
    Endpoint(
        "restore", "POST", "/fops/restore", result="none", body="json", status=204,
        idempotent=False,
        params=(Param("path", "strlist", "json", required=True),),
        errors=(*_NF, E.ConflictError),
    ),
    Endpoint(
        "trash", "GET", "/trash", result="trash",
        params=(
            Param("virtualfolder", "name", "query", required=True),
            _sort(),
            *_page(),
            Param("deep", "bool", "query", default=False),
            Param("filter", "enum", "query", choices=("file", "folder")),
        ),
        errors=_NF,
    ),
    Endpoint(
        "empty_trash", "DELETE", "/trash", result="none",
        params=(Param("virtualfolder", "name", "query", required=True),),
        errors=_NF,
    ),
    # Virtual folders -----------------------------------------------------------------------
    Endpoint(
        "create_virtualfolder", "POST", "/virtualfolder/{name}", result="folder", body="json",
        status=201, idempotent=False,
        params=(Param("name", "name", "path", required=True),),
        errors=(*_AUTH_ERRORS, E.ConflictError),
    ),
    Endpoint(
        "rename_virtualfolder", "PUT", "/virtualfolder", result="folder", body="json",
        idempotent=False,
        params=(
            Param("src", "name", "json", required=True),
            Param("target", "name", "json", required=True),
        ),
        errors=(*_NF, E.ConflictError),
    ),
    Endpoint(
        "delete_virtualfolder", "DELETE", "/virtualfolder", result="none", idempotent=False,
        params=(
            Param("name", "name", "query", required=True),
            Param("force", "bool", "query", default=False),
        ),
        errors=(*_NF, E.ConflictError),
    ),
    # Favorites and tags --------------------------------------------------------------------
    Endpoint(
        "favorites", "GET", "/favorites", result="favorites",
        params=(
            Param("virtualfolder", "str", "query", default="VZMOBILE"),
            Param("type", "enum", "query", choices=("file", "folder")),
            Param("filetype", "enum", "query",
                  choices=("image", "video", "music", "document", "other")),
        ),
        errors=_NF,
    ),
    Endpoint(
        "favorite", "PUT", "/favorites", result="none", body="json",
        params=(Param("uri", "strlist", "json", required=True), _CREATE_VERSION),
        errors=_NF,
    ),
    Endpoint(
        "unfavorite", "DELETE", "/favorites", result="none",
        params=(
            Param("uri", "strlist", "query", required=True),
            Param("createVersion", "bool", "query", default=False),
        ),
        errors=_NF,
    ),
    Endpoint(
        "tag", "PUT", "/tags", result="none", body="json",
        params=(
            Param("uri", "str", "json", required=True),
            Param("Tags", "str", "json", required=True, doc="comma separated"),
            _CREATE_VERSION,
        ),
        errors=_NF,
    ),
    Endpoint(
        "untag", "DELETE", "/tags", result="none",
        params=(
            Param("uri", "str", "query", required=True),
            Param("createVersion", "bool", "query", default=False),
        ),
        errors=_NF,
    ),
    Endpoint("tags", "GET", "/tags{path}", result="tags", params=(_PATH,), errors=_NF),
    # Shares --------------------------------------------------------------------------------
    Endpoint(
        "share", "POST", "/shares", result="share", body="json", status=201, idempotent=False,
        params=(
            Param("name", "str", "json"),
            Param("expiresIn", "int", "json", default=86400, minimum=0,
                  maximum=10 * 365 * 86400),
            Param("resources", "objlist", "json", required=True),
        ),
        errors=_NF,
    ),
    Endpoint(
        "shares", "GET", "/shares", result="shares",
        params=(
            Param("cursor", "str", "query"),
            Param("filter", "enum", "query", choices=("outbound",)),
            Param("since", "str", "query", doc="W3C date-time"),
            Param("until", "str", "query", doc="W3C date-time"),
            Param("count", "int", "query", default=20, minimum=1, maximum=200),
        ),
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "unshare", "DELETE", "/shares/{uid}", result="none",
        params=(Param("uid", "str", "path", required=True),), errors=_NF,
    ),
    Endpoint(
        "public_share", "GET", "/public/shares/{key}", result="share", auth="public",
        params=(Param("key", "str", "path", required=True),),
        errors=(E.NotFoundError, E.GoneError),
        doc="Decided: a share's public link; no token, refused (410) once expired.",
    ),
    Endpoint(
        "public_share_content", "GET", "/public/shares/{key}/{resource}", result="bytes",
        auth="public",
        params=(
            Param("key", "str", "path", required=True),
            Param("resource", "str", "path", required=True),
            Param("Range", "str", "header"),
        ),
        errors=(E.NotFoundError, E.GoneError, E.RangeNotSatisfiableError),
        extra_statuses=(206,),
        doc="Decided: the content of one shared file (by resource uid).",
    ),
    # Playlists -----------------------------------------------------------------------------
    Endpoint(
        "playlists", "GET", "/playlists", result="playlists",
        params=(
            Param("type", "enum", "query", choices=PLAYLIST_TYPES),
            *_page(),
            _sort(("name", "creationDate", "lastModifiedDate", "type")),
        ),
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "create_playlist", "POST", "/playlists", result="playlist", body="json", status=201,
        idempotent=False,
        params=(
            Param("name", "str", "json", required=True),
            Param("type", "enum", "json", required=True, choices=PLAYLIST_TYPES),
            Param("paths", "strlist", "json", default=(), minimum=0),
        ),
        errors=_NF,
    ),
    Endpoint(
        "playlist", "GET", "/playlists/{uid}", result="playlist",
        params=(Param("uid", "str", "path", required=True),), errors=_NF,
    ),
    Endpoint(
        "update_playlist", "PUT", "/playlists/{uid}", result="playlist", body="json",
        params=(
            Param("uid", "str", "path", required=True),
            Param("name", "str", "json", required=True),
            Param("type", "enum", "json", required=True, choices=PLAYLIST_TYPES),
        ),
        errors=_NF,
    ),
    Endpoint(
        "delete_playlist", "DELETE", "/playlists/{uid}", result="none",
        params=(Param("uid", "str", "path", required=True),), errors=_NF,
    ),
    Endpoint(
        "playlist_items", "GET", "/playlists/{uid}/items", result="playlist_items",
        params=(
            Param("uid", "str", "path", required=True),
            *_page(),
            _sort(("name", "versionCreated", "size", "extension")),
        ),
        errors=_NF,
    ),
    Endpoint(
        "add_playlist_items", "POST", "/playlists/{uid}/items", result="playlist_add",
        body="json", idempotent=False,
        params=(
            Param("uid", "str", "path", required=True),
            Param("add", "strlist", "json", required=True),
        ),
        errors=_NF,
    ),
    Endpoint(
        "update_playlist_definition", "PUT", "/playlists/{uid}/items", result="playlist",
        body="json",
        params=(
            Param("uid", "str", "path", required=True),
            Param("name", "str", "json", required=True),
            Param("type", "enum", "json", required=True, choices=PLAYLIST_TYPES),
            Param("paths", "strlist", "json", required=True, minimum=0),
        ),
        errors=_NF,
    ),
    Endpoint(
        "remove_playlist_item", "DELETE", "/playlists/{uid}/items/{itemuid}", result="none",
        params=(
            Param("uid", "str", "path", required=True),
            Param("itemuid", "str", "path", required=True),
        ),
        errors=_NF,
    ),
    Endpoint(
        "playlist_item_content", "GET", "/playlists/{uid}/items/{itemuid}", result="bytes",
        auth="bearer_or_query",
        params=(
            Param("uid", "str", "path", required=True),
            Param("itemuid", "str", "path", required=True),
            Param("Range", "str", "header"),
        ),
        errors=(*_NF, E.RangeNotSatisfiableError),
        extra_statuses=(206,),
    ),
    # Contacts ------------------------------------------------------------------------------
    Endpoint(
        "contacts", "GET", "/contacts", result="contacts",
        params=(
            *_page(default_count=200, max_count=200),
            Param("query", "str", "query"),
            _sort(("firstname", "lastname", "created", "modified")),
        ),
        errors=_AUTH_ERRORS,
        doc="Old clients send empty strings for unset parameters: they count as unset.",
    ),
    Endpoint(
        "create_contact", "POST", "/contacts", result="contact", body="json", status=201,
        idempotent=False,
        params=(Param("contact", "object", "body", required=True),),
        errors=_AUTH_ERRORS,
    ),
    Endpoint(
        "update_contact", "PUT", "/contacts/{id}", result="contact", body="json",
        params=(
            Param("id", "str", "path", required=True),
            Param("contact", "object", "body", required=True),
        ),
        errors=(*_NF, E.ConflictError),
    ),
    Endpoint(
        "delete_contact", "DELETE", "/contacts/{id}", result="none",
        params=(Param("id", "str", "path", required=True),), errors=_NF,
    ),
)

BY_NAME: dict[str, Endpoint] = {e.name: e for e in ENDPOINTS}
assert len(BY_NAME) == len(ENDPOINTS), "endpoint names must be unique"
