"""The OpenAPI 3 document of the Cloud API, generated from ``vzcloud.api.endpoints``.

Served by the embedded cloud at ``GET /cloud/1/openapi.json`` (no auth). That route is
not in the endpoint table on purpose: the table is the wire contract of the real
service, which has no such document, and the SDK and the endpoint tests iterate it.

What is generated, per endpoint of the table:

- the path (relative to the ``servers`` URL ``/cloud/1``; a ``{path}`` placeholder is
  a whole cloud path, slashes included), the method, ``operationId`` = endpoint name;
- parameters in query, path and header with JSON Schema types from their kind: ``int``
  with its bounds, ``enum`` and ``sort`` with their choices (``sort`` as
  ``FIELD+asc|desc``), ``cloudpath`` starting with ``/``, ``name`` of 1..255 characters,
  ``strlist`` as a repeated query parameter or a JSON array;
- the request body: a JSON object of the ``json`` parameters (or the one ``body``
  parameter), a form of the ``form`` parameters, or raw bytes;
- security: Bearer, or Bearer / ``access-token`` query for content URLs, HTTP Basic or
  form credentials for the OAuth client endpoints, none for public ones;
- responses: the success status with a schema built from ``vzcloud.api.models`` (the
  wrappers of the wire, e.g. ``{"file": File}``), the endpoint's extra statuses (206,
  205, 412), and one response per declared error status, plus what the router adds
  for every endpoint (400 for parameters, 401 without a valid token, 413 for an
  oversize body, 431 for an oversize request head, 429/503 with ``Retry-After``) — all with the JSON error schema
  ``{"error", "error_description"}``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import types
import typing
from functools import cache
from typing import Any

from vzcloud.api import errors as E
from vzcloud.api import models as M
from vzcloud.api import paths as P
from vzcloud.api.endpoints import BASE_PATH, ENDPOINTS, Endpoint, Param

OPENAPI_VERSION = "3.0.3"
OPENAPI_PATH = BASE_PATH + "/openapi.json"
JSON = "application/json"
# Endpoints that write file content: a full server disk answers 507.
WRITES_CONTENT = ("upload", "commit")

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# Models -> JSON Schema --------------------------------------------------------------------

# Wire-level models, by the component name they get.
MODELS: dict[str, type[M.Model]] = {
    "File": M.CloudFile,
    "Folder": M.CloudFolder,
    "Token": M.Token,
    "UploadIntent": M.UploadIntent,
    "Contact": M.Contact,
    "Playlist": M.Playlist,
    "PlaylistItem": M.PlaylistItem,
    "PlaylistAdd": M.PlaylistAdd,
    "ShareRequest": M.ShareRequest,
    "ShareResource": M.ShareResource,
    "Link": M.Link,
    "Share": M.Share,
}
_COMPONENT_OF = {cls: name for name, cls in MODELS.items()}


def _type_schema(tp: Any) -> tuple[Schema, bool]:
    """(schema, optional) of a field's type annotation; ``X | None`` is optional."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        schema, _ = _type_schema(rest[0]) if len(rest) == 1 else ({}, False)
        return schema, type(None) in args
    if tp is str:
        return {"type": "string"}, False
    if tp is bool:
        return {"type": "boolean"}, False
    if tp is int:
        return {"type": "integer"}, False
    if tp is float:
        return {"type": "number"}, False
    if origin is dict or tp is dict:
        return {"type": "object"}, False
    if origin is list or tp is list:
        item, _ = _type_schema(args[0]) if args else ({}, False)
        return {"type": "array", "items": item}, False
    if isinstance(tp, type) and issubclass(tp, M.Model):
        return _ref(_COMPONENT_OF[tp]), False
    return {}, False  # Any


def model_schema(cls: type[M.Model]) -> Schema:
    """A model's wire object: its fields under their wire names, the non-optional ones
    required (``to_json`` always writes them), unknown keys allowed (``extra``)."""
    hints = typing.get_type_hints(cls)
    wires, _ = cls._maps()
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "extra":
            continue
        schema, optional = _type_schema(hints[f.name])
        properties[wires[f.name]] = schema
        if not optional:
            required.append(wires[f.name])
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def _obj(properties: dict[str, Schema], required: tuple[str, ...] | None = None) -> Schema:
    """An object with these properties, all required unless ``required`` says which."""
    return {"type": "object", "properties": properties,
            "required": list(properties if required is None else required)}


def _array(item: Schema) -> Schema:
    return {"type": "array", "items": item}


LISTING = _obj({"file": _array(_ref("File")), "folder": _array(_ref("Folder"))})
ERROR = _obj({"error": {"type": "string", "minLength": 1},
              "error_description": {"type": "string", "minLength": 1}})

# Wire shapes that are not one model.
SHAPES: dict[str, Schema] = {
    "Error": ERROR,
    "Listing": LISTING,
    "Account": _obj({"usage": _obj({"quota": {"type": "integer"},
                                    "quotaUsed": {"type": "integer"}}),
                     "id": {"type": "string"}}),
}

# Endpoint.result -> the schema of a successful JSON body.
RESULTS: dict[str, Schema] = {
    "account": _ref("Account"),
    "token": _ref("Token"),
    "metadata": {"anyOf": [_obj({"file": _ref("File")}), _obj({"folder": _ref("Listing")})]},
    "fullview": _obj({"data": _obj({
        "file": _array(_ref("File")),
        "folder": _array(_ref("Folder")),
        "deleted": _obj({"path": _array({"type": "string"})}),
    })}),
    "search": _obj({"searchResults": _ref("Listing")}),
    "trash": _obj({"trashCan": _ref("Listing")}),
    "favorites": _obj({"favorites": _ref("Listing")}),
    "upload_intent": _obj({"uploadurls": _ref("UploadIntent")}),
    "upload": _obj({"file": _ref("File")}),
    "file": _obj({"file": _ref("File")}),
    "folder": _obj({"folder": _ref("Folder")}),
    "item": {"anyOf": [_obj({"file": _ref("File")}), _obj({"folder": _ref("Folder")})]},
    "tags": _obj({"Tags": {"type": "string"}}),
    "share": _ref("Share"),
    "shares": _obj({"shares": _obj({"count": {"type": "integer"},
                                    "links": _array(_ref("Link")),
                                    "share": _array(_ref("Share"))})}),
    "playlists": _obj({"playlistDefinitions": _obj(
        {"playlistDefinition": _array(_ref("Playlist"))})}),
    "playlist": {"anyOf": [_obj({"playlistDefinition": _ref("Playlist")}), _ref("Playlist")]},
    "playlist_items": _obj({"playlist": _obj(
        {"playlistElement": _array(_ref("PlaylistItem"))})}),
    "playlist_add": _obj({"paths": _array(
        {"anyOf": [{"type": "string"}, _ref("PlaylistAdd")]})}),
    "contacts": _obj({"contactsResponse": _obj({"account": _obj({
        "userid": {"type": "string"},
        "addrbook": _obj({
            "updated": {"type": "string"},
            "contacts": _obj({"itemcount": {"type": "integer"},
                              "contact": _array(_ref("Contact"))}),
        }, required=("contacts",)),
    })})}),
    "contact": {"anyOf": [_obj({"contact": _ref("Contact")}), _ref("Contact")]},
}


# Parameters -------------------------------------------------------------------------------

EXAMPLES = {  # realistic values, so the explicit examples reach the handlers' happy paths
    "cloudpath": "/VZMOBILE",
    "name": "notes.txt",
}


def param_schema(param: Param) -> Schema:
    """The JSON Schema of one parameter's value."""
    k = param.kind
    schema: Schema
    if k == "int":
        schema = {"type": "integer", "format": "int64"}
        if param.minimum is not None:
            schema["minimum"] = param.minimum
        if param.maximum is not None:
            schema["maximum"] = param.maximum
    elif k == "bool":
        schema = {"type": "boolean"}
    elif k == "cloudpath":
        schema = {"type": "string", "pattern": "^/", "maxLength": P.MAX_PATH_BYTES,
                  "example": EXAMPLES["cloudpath"]}
    elif k == "name":
        schema = {"type": "string", "minLength": 1, "maxLength": P.MAX_NAME_BYTES,
                  "example": EXAMPLES["name"]}
    elif k == "sort":
        schema = {"type": "string",
                  "enum": [f"{f}+{o}" for f in param.choices for o in ("asc", "desc")]}
    elif k == "enum":
        schema = {"type": "string", "enum": list(param.choices)}
    elif k == "strlist":
        schema = {"type": "array", "items": {"type": "string"}, "maxItems": 1000}
        schema["minItems"] = 1 if param.minimum is None else param.minimum
    elif k == "object":
        schema = {"type": "object"}
    elif k == "objlist":
        schema = {"type": "array", "items": {"type": "object"}, "maxItems": 1000}
    else:
        schema = {"type": "string", "minLength": 1}
    if param.default is not None and k not in ("strlist", "objlist"):
        schema["default"] = param.default
    if param.doc:
        schema["description"] = param.doc
    return schema


def _parameter(param: Param) -> Schema:
    out: Schema = {"name": param.name, "in": param.where,
                   "required": param.required or param.where == "path",
                   "schema": param_schema(param)}
    if param.where == "query" and not param.required:
        # Old clients send ``count=`` for "no preference": an empty value counts as unset.
        out["schema"].pop("minLength", None)
        out["allowEmptyValue"] = True
    if param.kind == "strlist":
        out.update(style="form", explode=True)
    if param.aliases:
        out["description"] = f"also accepted as: {', '.join(param.aliases)}"
    return out


def _request_body(ep: Endpoint) -> Schema | None:
    if ep.body == "bytes":
        return {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    whole = [p for p in ep.params if p.where == "body"]
    if whole:
        return {"required": True, "content": {JSON: {"schema": param_schema(whole[0])}}}
    where = "json" if ep.body == "json" else "form" if ep.body == "form" else None
    if where is None:
        return None
    fields = [p for p in ep.params if p.where == where]
    schema: Schema = {"type": "object",
                      "properties": {p.name: param_schema(p) for p in fields}}
    required = [p.name for p in fields if p.required]
    if required:
        schema["required"] = required
    media = JSON if where == "json" else "application/x-www-form-urlencoded"
    return {"required": bool(required) or where == "json", "content": {media: {"schema": schema}}}


# Responses --------------------------------------------------------------------------------

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "integer", "minimum": 0}}}


def _error_response(description: str, headers: Schema | None = None) -> Schema:
    out: Schema = {"description": description,
                   "content": {JSON: {"schema": _ref("Error")}}}
    if headers:
        out["headers"] = headers
    return out


def _success(ep: Endpoint) -> Schema:
    description = ep.doc or f"{ep.name}: success"
    if ep.result == "bytes":
        return {"description": "the content", "content": {"*/*": {
            "schema": {"type": "string", "format": "binary"}}}}
    if ep.result == "html":
        return {"description": description, "content": {"text/html": {
            "schema": {"type": "string"}}}}
    if ep.result in ("redirect", "none"):
        out: Schema = {"description": description}
        if ep.result == "redirect":
            out["headers"] = {"Location": {"schema": {"type": "string"}}}
        return out
    out = {"description": description, "content": {JSON: {"schema": RESULTS[ep.result]}}}
    if ep.result == "fullview":
        out["headers"] = {"X-Header-ETag": {"schema": {"type": "string"}}}
    return out


def error_statuses(ep: Endpoint) -> set[int]:
    """Every error status ``ep`` may answer: its declared errors and the router's own."""
    statuses = {cls.status for cls in ep.errors if cls.status}
    statuses.add(400)  # parameters are validated for every endpoint
    statuses.add(431)  # request line and headers over the server's limit (server.runner)
    if ep.auth in ("bearer", "bearer_or_query", "client"):
        statuses.add(401)
    if ep.body in ("json", "form"):
        statuses.add(413)  # body_too_large
    if any(p.name == "path" and p.where == "path" for p in ep.params):
        statuses.add(404)  # a {path} not starting with '/' names no endpoint
    if ep.name in WRITES_CONTENT:
        statuses.add(507)  # insufficient_storage
    return statuses


def _responses(ep: Endpoint) -> dict[str, Schema]:
    out: dict[str, Schema] = {str(ep.status): _success(ep)}
    for status in ep.extra_statuses:
        if status == 206:
            out["206"] = {"description": "one byte range (Content-Range)",
                          "content": {"*/*": {"schema": {"type": "string",
                                                         "format": "binary"}}}}
        elif status == 205:
            out["205"] = {"description": "out of sync: the etag is older than the change "
                          "log; the error code is in X-Error",
                          "headers": {"X-Error": {"schema": {"type": "string"}}}}
        elif status == 412:
            out["412"] = _error_response("nothing changed since the etag",
                                         {"X-Header-ETag": {"schema": {"type": "string"}}})
        else:
            out[str(status)] = {"description": f"HTTP {status}"}
    for status in sorted(error_statuses(ep)):
        if str(status) in out:
            continue
        cls = E.ERRORS_BY_STATUS.get(status)
        description = ((cls.__doc__ or cls.__name__).strip().splitlines()[0] if cls
                       else "the server's storage is full" if status == 507
                       else f"HTTP {status}")
        response = _error_response(description)
        if ep.result == "html" or ep.name == "authorize_submit":
            # The sign-in pages answer browsers (Accept: text/html) with HTML.
            response["content"]["text/html"] = {"schema": {"type": "string"}}
        out[str(status)] = response
    for status in (429, 503):
        out[str(status)] = _error_response(
            "rate limited" if status == 429 else "temporarily unavailable", _RETRY_AFTER)
    return out


def _security(ep: Endpoint) -> list[Schema]:
    if ep.auth == "bearer":
        return [{"bearer": []}]
    if ep.auth == "bearer_or_query":
        return [{"bearer": []}, {"accessTokenQuery": []}]
    if ep.auth == "client":
        return [{"clientBasic": []}, {}]  # or client_id/client_secret in the form
    return []


def operation(ep: Endpoint) -> Schema:
    op: Schema = {
        "operationId": ep.name,
        "summary": ep.doc.split(". ")[0] if ep.doc else ep.name.replace("_", " "),
        "parameters": [_parameter(p) for p in ep.params
                       if p.where in ("query", "path", "header")],
        "responses": _responses(ep),
        "security": _security(ep),
    }
    if ep.doc:
        op["description"] = ep.doc
    if not ep.idempotent:
        op["x-idempotent"] = False
    body = _request_body(ep)
    if body is not None:
        op["requestBody"] = body
    return op


def _version() -> str:
    try:
        return importlib.metadata.version("vzcloud")
    except importlib.metadata.PackageNotFoundError:
        return "0"


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once; callers must not modify it)."""
    paths: dict[str, dict[str, Schema]] = {}
    for ep in ENDPOINTS:
        paths.setdefault(ep.path, {})[ep.method.lower()] = operation(ep)
    schemas: dict[str, Schema] = {name: model_schema(cls) for name, cls in MODELS.items()}
    schemas.update(SHAPES)
    # The reference: systemAttributes "is an object and always carries mimeType".
    schemas["File"]["properties"]["systemAttributes"] = _obj(
        {"mimeType": {"type": "string", "minLength": 1}})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Personal Cloud Storage API (vzcloud embedded cloud)",
            "version": _version(),
            "description": "Generated from vzcloud.api.endpoints. Errors answer "
                           '{"error": CODE, "error_description": TEXT}.',
        },
        "servers": [{"url": BASE_PATH}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "accessTokenQuery": {"type": "apiKey", "in": "query", "name": "access-token"},
                "clientBasic": {"type": "http", "scheme": "basic"},
            },
        },
    }
