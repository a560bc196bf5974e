"""Handlers of the embedded cloud, one module per group of endpoints.

A handler is registered under its endpoint's name (``vzcloud.api.endpoints``) with
``@handler("name")`` and is called as ``fn(ctx, args)`` with ``args`` already validated
by the router (keys are the wire names of the declared parameters, defaults filled in).

Plain ``def`` handlers run in the thread pool (they may block on SQLite and files);
``async def`` handlers run on the event loop and must not block (uploads use them to
stream the request body, pushing file work to threads).

A handler returns a Model (sent as JSON with the endpoint's status), a dict or list (the
same), None (empty body with the endpoint's status) or a Starlette Response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HANDLERS: dict[str, Callable[..., Any]] = {}


def handler(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in HANDLERS:
            raise RuntimeError(f"two handlers for endpoint {name!r}")
        HANDLERS[name] = fn
        return fn

    return register
