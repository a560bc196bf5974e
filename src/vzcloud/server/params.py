"""Request parameters validated against the endpoint table, before any handler runs.

Pure functions: given an ``Endpoint`` and what arrived (query, JSON body, form, path
parameters, headers), return the arguments by wire name with declared defaults filled in,
or raise BadRequestError naming the parameter and what is wrong with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from vzcloud.api import paths as P
from vzcloud.api.endpoints import Endpoint, Param
from vzcloud.api.errors import BadRequestError

MAX_TEXT = 64 * 1024
MAX_LIST = 1000
# ASCII digits only: str.isdigit() also accepts '¹' (which int() refuses) and '٣'.
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_url_text(raw_path: bytes, query_string: bytes) -> None:
    """Refuse a URL whose percent-escapes do not decode to UTF-8 (BadRequestError).

    The ASGI layer decodes ``%ff`` to U+FFFD without a word, so ``/VZMOBILE/a%ff`` would
    silently name the file ``a`` + U+FFFD; refusing it keeps every name what the client
    meant."""
    for part, what in ((raw_path, "path"), (query_string.replace(b"+", b" "), "query")):
        try:
            unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequestError(
                f"the URL {what} is not UTF-8 text once percent-decoded ({exc.reason} at "
                f"byte {exc.start})"
            ) from None


def parse_json_body(raw: bytes) -> Any:
    """The decoded JSON of a request body (None when it is empty), or BadRequestError.

    Refused besides malformed JSON: ``null``, nesting deeper than the parser manages, and strings
    holding a lone UTF-16 surrogate (``"\\ud800"``): valid JSON, but not Unicode text,
    so no name, tag or contact field could be stored or sent back as UTF-8."""
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except RecursionError:
        raise BadRequestError("the request body is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}") from None
    if body is None:  # the literal null: no endpoint takes it (an empty body is fine)
        raise BadRequestError("the request body must be a JSON object, not null")
    pending = [body]
    while pending:  # iterative: a deeply nested body must not exhaust the stack here
        value = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise BadRequestError(
                    "the request body is not valid Unicode text: a string holds a lone "
                    "UTF-16 surrogate escape (\\ud800-\\udfff)"
                )
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return body


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequestError(f"parameter {name!r} must be true or false, not {value!r}")


def parse_sort(param: Param, value: str) -> tuple[str, bool]:
    """``name+asc`` (the ``+`` may have arrived decoded as a space) -> (field, descending)."""
    text = value.replace(" ", "+")
    field, _, order = text.partition("+")
    order = order.lower() or "asc"
    if field not in param.choices or order not in ("asc", "desc"):
        raise BadRequestError(
            f"parameter 'sort' must be FIELD+asc or FIELD+desc with FIELD one of "
            f"{', '.join(param.choices)}; got {value!r}"
        )
    return field, order == "desc"


def convert(param: Param, value: Any) -> Any:
    """One raw value -> its typed form, or BadRequestError."""
    n = param.name
    k = param.kind
    if k == "bool":
        return parse_bool(n, value)
    if k == "int":
        if isinstance(value, bool):
            raise BadRequestError(f"parameter {n!r} must be a whole number")
        if isinstance(value, str):
            if not _WHOLE_NUMBER.fullmatch(value.strip()):
                raise BadRequestError(f"parameter {n!r} must be a whole number, not {value!r}")
            value = int(value)
        if not isinstance(value, int):
            raise BadRequestError(f"parameter {n!r} must be a whole number")
        if param.minimum is not None and value < param.minimum:
            raise BadRequestError(f"parameter {n!r} must be at least {param.minimum}")
        if param.maximum is not None and value > param.maximum:
            raise BadRequestError(f"parameter {n!r} must be at most {param.maximum}")
        return value
    if k in ("objlist", "object"):
        if k == "object" and not isinstance(value, dict):
            raise BadRequestError(f"parameter {n!r} must be a JSON object")
        if k == "objlist" and not (
            isinstance(value, list) and all(isinstance(v, dict) for v in value)
        ):
            raise BadRequestError(f"parameter {n!r} must be a list of JSON objects")
        if k == "objlist" and len(value) > MAX_LIST:
            raise BadRequestError(f"parameter {n!r} has more than {MAX_LIST} items")
        return value
    if k == "strlist":
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise BadRequestError(f"parameter {n!r} must be a string or a list of strings")
        # ``minimum`` of a strlist is its fewest items (default 1; 0 allows an empty list).
        least = 1 if param.minimum is None else param.minimum
        if len(items) < least or len(items) > MAX_LIST:
            raise BadRequestError(f"parameter {n!r} needs {least} to {MAX_LIST} items")
        return list(items)
    # The rest are text.
    if not isinstance(value, str):
        raise BadRequestError(f"parameter {n!r} must be a string")
    if "\x00" in value:
        raise BadRequestError(f"parameter {n!r} contains a NUL character")
    if len(value) > MAX_TEXT:
        raise BadRequestError(f"parameter {n!r} is too long")
    if k == "cloudpath":
        return P.normalize(value)
    if k == "name":
        return P.check_name(value)
    if k == "sort":
        return parse_sort(param, value)
    if k == "enum":
        if value not in param.choices:
            raise BadRequestError(
                f"parameter {n!r} must be one of {', '.join(param.choices)}; got {value!r}"
            )
        return value
    if value == "" and k == "str":
        raise BadRequestError(f"parameter {n!r} must not be empty")
    return value


def parse_args(
    endpoint: Endpoint,
    *,
    query: Mapping[str, list[str]],
    path_params: Mapping[str, str],
    headers: Mapping[str, str],
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Validate and convert every declared parameter of ``endpoint``.

    ``query`` maps names to every value given (a repeated parameter is a list for
    ``strlist`` and an error otherwise). Empty query values count as unset, because old
    clients send ``count=`` for "no preference". Parameters not declared are ignored.
    """
    if endpoint.body == "json" and json_body is not None and not isinstance(json_body, dict):
        if not any(p.where == "body" for p in endpoint.params):
            raise BadRequestError("the request body must be a JSON object")
    args: dict[str, Any] = {}
    for param in endpoint.params:
        raw: Any = None
        present = False
        if param.where == "query":
            for wire_name in (param.name, *param.aliases):
                values = [v for v in query.get(wire_name, []) if v != ""]
                if values:
                    if param.kind == "strlist":
                        raw = values
                    elif len(values) > 1:
                        raise BadRequestError(f"parameter {wire_name!r} is given more than once")
                    else:
                        raw = values[0]
                    present = True
                    break
        if param.where == "path":
            raw = path_params.get(param.name)
            present = raw not in (None, "")
        elif param.where == "header":
            raw = headers.get(param.name.lower())
            present = raw is not None
        elif param.where == "json":
            if isinstance(json_body, dict) and param.name in json_body:
                raw = json_body[param.name]
                present = raw is not None
        elif param.where == "form":
            if form is not None and param.name in form and form[param.name] != "":
                raw = form[param.name]
                present = True
        elif param.where == "body":
            raw = json_body
            present = json_body is not None
        if not present:
            if param.required:
                raise BadRequestError(f"missing required parameter {param.name!r}")
            default = param.default
            args[param.name] = list(default) if isinstance(default, tuple) else default
            continue
        args[param.name] = convert(param, raw)
    return args
