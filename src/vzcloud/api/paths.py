"""Cloud paths and names: the one place that says what a valid one is.

A cloud path is absolute and its first component is a virtual folder:
``/VZMOBILE/Photos/a.jpg``. ``/`` alone is the root (the list of virtual folders).
The server refuses an invalid path with 400 before touching storage; the filesystem
refuses such a name with an errno before queuing an upload.
"""

from __future__ import annotations

import unicodedata

from vzcloud.api.errors import BadRequestError

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEPTH = 256


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file or folder name, or None if it can."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"'{name}' is not a valid name"
    if "/" in name:
        return "a name cannot contain '/'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "a name cannot contain control characters"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "a name must be valid Unicode text"
    if len(encoded) > MAX_NAME_BYTES:
        return f"a name is at most {MAX_NAME_BYTES} bytes in UTF-8"
    if name != name.strip() and name.strip() == "":
        return "a name cannot be only white space"
    return None


def check_name(name: str) -> str:
    """Return ``name`` (NFC-normalised) or raise BadRequestError saying why it is invalid."""
    problem = name_problem(name)
    if problem:
        raise BadRequestError(f"invalid name {name!r}: {problem}")
    return unicodedata.normalize("NFC", name)


def split_path(path: str) -> list[str]:
    """``/A/b/c`` -> ``["A", "b", "c"]``; ``/`` -> ``[]``. Raises BadRequestError.

    A trailing slash is tolerated; empty inner components (``/A//b``) are not.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequestError(f"invalid path {path!r}: a cloud path starts with '/'")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise BadRequestError(f"invalid path: longer than {MAX_PATH_BYTES} bytes")
    body = path[1:]
    if body.endswith("/"):
        body = body[:-1]
    if not body:
        return []
    parts = body.split("/")
    if len(parts) > MAX_DEPTH:
        raise BadRequestError(f"invalid path: deeper than {MAX_DEPTH} levels")
    return [check_name(p) for p in parts]


def join(parts: list[str] | tuple[str, ...]) -> str:
    return "/" + "/".join(parts)


def normalize(path: str) -> str:
    """The canonical form of a valid path (no trailing slash, NFC names)."""
    return join(split_path(path))


def parent_and_name(path: str) -> tuple[str, str]:
    """``/A/b/c`` -> (``/A/b``, ``c``); raises BadRequestError for ``/``."""
    parts = split_path(path)
    if not parts:
        raise BadRequestError("the root has no parent")
    return join(parts[:-1]), parts[-1]


def item_uri(user_id: str, path: str, is_folder: bool) -> str:
    """The item URI: ``dv-file://<user id>:VZMOBILE/dir/file.ext`` (folders: dv-folder)."""
    scheme = "dv-folder" if is_folder else "dv-file"
    return f"{scheme}://{user_id}:{path.lstrip('/')}"


def parse_uri(uri: str) -> tuple[str, str, bool]:
    """Inverse of ``item_uri``: (user id, path, is_folder). Raises BadRequestError."""
    for scheme, is_folder in (("dv-file://", False), ("dv-folder://", True)):
        if uri.startswith(scheme):
            rest = uri[len(scheme):]
            user, sep, path = rest.partition(":")
            if not sep or not user:
                break
            return user, normalize("/" + path), is_folder
    raise BadRequestError(f"invalid item uri {uri!r}: expected dv-file://USER:PATH")
