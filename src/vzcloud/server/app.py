"""The embedded cloud as an ASGI app, routed from the endpoint table.

For every request the router: finds the endpoint by method and path template; checks
auth as the table says; reads and size-limits the body; validates every parameter
(``params.parse_args``); applies injected faults (tests only); calls the handler; turns
its result into a response; and turns any CloudError into its status and JSON body
through the one table in ``vzcloud.api.errors``. Anything else becomes a 500 with a
generic JSON body and a logged traceback; no traceback ever reaches a client.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import inspect
import logging
import pkgutil
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vzcloud.api import errors as E
from vzcloud.api.endpoints import BASE_PATH, ENDPOINTS, Endpoint
from vzcloud.api.models import Model
from vzcloud.server import openapi
from vzcloud.server import routes as routes_pkg
from vzcloud.server.auth import VerifiedTokens, authenticate
from vzcloud.server.blobs import BlobStore
from vzcloud.server.config import ServerConfig
from vzcloud.server.content import recover
from vzcloud.server.faults import Faults
from vzcloud.server.login_limit import LoginLimiter
from vzcloud.server.params import check_url_text, parse_args, parse_json_body
from vzcloud.server.routes import HANDLERS
from vzcloud.server.store import Account, Store

log = logging.getLogger("vzcloud.server")
access_log = logging.getLogger("vzcloud.server.access")

T = TypeVar("T")

# As many as Starlette's own thread pool (anyio's default limit) would run at once.
WORKER_THREADS = 40

_SECRET_QUERY = re.compile(
    r"(access-token|access_token|code|refresh_token|client_secret|token|password)=[^&]*"
)


def redact(query: str) -> str:
    """A query string safe to log: secrets replaced by ``***``."""
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", query)


class CloudServer:
    """The state of one embedded cloud: config, database and blob files."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(config.data_dir / "cloud.db")
        self.faults = Faults(store=self.store)  # tests only; see vzcloud.server.faults
        self.blobs = BlobStore(config.data_dir, check_space=self.faults.check_disk)
        self.login_limiter = LoginLimiter(config)  # password guessing at the sign-in page
        self.verified_tokens = VerifiedTokens(self.store)  # spares most requests a query
        # Handlers' threads (see in_thread); shut down before the store closes.
        self.executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="vzcloud-handler")
        # Leftovers of a crash or of abandoned uploads (see vzcloud.server.content).
        recover(self.store, self.blobs, config)

    def collect_garbage(self) -> None:
        """Delete blob files whose last reference went away in a committed transaction.

        Under the store lock, so an upload adopting the same blob (also under the lock)
        cannot have it deleted between our reference check and the unlink.
        """
        for checksum in self.store.take_released():
            with self.store.lock:
                if not self.store.referenced(checksum):
                    self.blobs.delete(checksum)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of the cloud's worker threads (handlers are plain ``def``).

        Half the CPU and a third of the latency of Starlette's ``run_in_threadpool`` (anyio:
        a capacity limiter, a cancel scope and a Condition-based queue per call), which
        counted for a tenth of a tiny download. A cancelled caller stops waiting, but the
        call runs to its end; ``close`` waits for every one.
        """
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.store.close()


@dataclass
class Ctx:
    """What a handler gets besides its arguments."""

    cloud: CloudServer
    endpoint: Endpoint
    request: Request
    account_or_none: Account | None

    @property
    def account(self) -> Account:
        if self.account_or_none is None:  # only for endpoints with auth="none"/"public"
            raise E.UnauthorizedError("this call needs an access token")
        return self.account_or_none

    @property
    def store(self) -> Store:
        return self.cloud.store

    @property
    def base_url(self) -> str:
        """``scheme://host[:port]`` the client reached us at (or the configured one)."""
        if self.cloud.config.public_url:
            return self.cloud.config.public_url.rstrip("/")
        return str(self.request.base_url).rstrip("/")

    @property
    def api_url(self) -> str:
        return self.base_url + BASE_PATH


def _starlette_path(template: str) -> str:
    # "{path}" is a whole cloud path (may be empty or contain slashes).
    return template.replace("{path}", "{path:path}")


def error_response(err: E.CloudError) -> Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(int(err.retry_after))
    status = err.status or 500
    if status == 205:
        # 205 must not carry a body per HTTP; the error code travels in a header.
        return Response(status_code=205, headers={**headers, "X-Error": err.error})
    return JSONResponse(err.to_json(), status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise E.BadRequestError("invalid Content-Length")
        if int(declared) > limit:
            raise E.QuotaExceededError(f"request body over {limit} bytes", error="body_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise E.QuotaExceededError(f"request body over {limit} bytes",
                                           error="body_too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise E.BadRequestError("the client disconnected before the body was complete") from None
    return b"".join(chunks)


def storage_error(exc: Exception) -> E.CloudError | None:
    """507 ``insufficient_storage`` when ``exc`` says the server's disk is full (ENOSPC,
    EDQUOT, SQLite's SQLITE_FULL); None for any other failure. Not the account's quota
    (that is a 413): retrying is useless until the server's operator makes room."""
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        isinstance(exc, sqlite3.Error)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )
    if not full:
        return None
    return E.ServerError("the server's storage is full; nothing was stored, try again later",
                         status=507, error="insufficient_storage")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def _call(cloud: CloudServer, endpoint: Endpoint, request: Request) -> Response:
    # A {path} placeholder also matches "/metadataX": that is not our endpoint.
    raw_path = request.path_params.get("path")
    if raw_path and not raw_path.startswith("/"):
        raise E.NotFoundError(f"no such endpoint: {request.url.path}", error="no_such_endpoint")
    check_url_text(request.scope.get("raw_path") or b"", request.scope.get("query_string", b""))

    account: Account | None = None
    if endpoint.auth in ("bearer", "bearer_or_query"):
        token = _bearer(request)
        if token is None and endpoint.auth == "bearer_or_query":
            token = request.query_params.get("access-token")
        account = cloud.verified_tokens.account(token)
        if account is None:
            account = await cloud.in_thread(authenticate, cloud.store, token,
                                            cloud.verified_tokens)

    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)

    json_body: Any = None
    form: dict[str, str] | None = None
    if endpoint.body == "json":
        json_body = parse_json_body(await _read_body(request, cloud.config.max_json_body))
    elif endpoint.body == "form":
        raw = await _read_body(request, cloud.config.max_json_body)
        form = {k: v[-1] for k, v in query.items()}
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise E.BadRequestError("the form body is not UTF-8") from None
        form.update({k: v[-1] for k, v in parsed.items()})

    args = parse_args(
        endpoint,
        query=query,
        path_params=request.path_params,
        headers=request.headers,
        json_body=json_body,
        form=form,
    )

    fault = cloud.faults.take(endpoint.name)
    if fault is not None:
        cls = E.ERRORS_BY_STATUS.get(fault.status, E.ServerError)
        raise cls("injected fault", status=fault.status, retry_after=fault.retry_after)

    fn = HANDLERS.get(endpoint.name)
    if fn is None:
        raise E.ServerError(f"endpoint {endpoint.name} is not implemented", status=501,
                            error="not_implemented")
    ctx = Ctx(cloud, endpoint, request, account)
    if inspect.iscoroutinefunction(fn):
        result = await fn(ctx, args)
    else:
        result = await cloud.in_thread(fn, ctx, args)
    if cloud.store.released:
        await cloud.in_thread(cloud.collect_garbage)
    return to_response(endpoint, result)


def to_response(endpoint: Endpoint, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, Model):
        return JSONResponse(result.to_json(), status_code=endpoint.status)
    if isinstance(result, dict | list):
        return JSONResponse(result, status_code=endpoint.status)
    if result is None:
        return Response(status_code=endpoint.status)
    raise TypeError(f"handler of {endpoint.name} returned {type(result).__name__}")


def _dispatcher(cloud: CloudServer, by_method: dict[str, Endpoint]) -> Callable[..., Any]:
    async def dispatch(request: Request) -> Response:
        started = time.monotonic()
        endpoint = by_method.get(request.method)
        if endpoint is None and request.method == "HEAD":
            endpoint = by_method.get("GET")
        try:
            if endpoint is None:
                raise E.MethodNotAllowedError(
                    f"{request.method} is not allowed here; use {', '.join(sorted(by_method))}"
                )
            delay = cloud.faults.delay(endpoint.name)
            if delay:
                await anyio.sleep(delay)
            request = cloud.faults.wrap_request(endpoint.name, request)
            response = await _call(cloud, endpoint, request)
        except E.CloudError as err:
            response = error_response(err)
        except Exception as exc:
            known = storage_error(exc)
            if known is None:
                log.exception("internal error in %s %s", request.method, request.url.path)
                known = E.ServerError("internal server error")
            response = error_response(known)
        if endpoint is not None:
            response = cloud.faults.wrap_response(endpoint.name, request, response)
        if access_log.isEnabledFor(logging.INFO):  # building the line costs, logged or not
            access_log.info(
                "%s %s%s -> %s (%.1f ms)",
                request.method,
                request.url.path,
                ("?" + redact(request.url.query)) if request.url.query else "",
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
        return response

    return dispatch


async def _openapi(request: Request) -> Response:
    """GET /cloud/1/openapi.json: the OpenAPI document of the endpoint table."""
    if request.method not in ("GET", "HEAD"):
        return error_response(E.MethodNotAllowedError(
            f"{request.method} is not allowed here; use GET"))
    return JSONResponse(openapi.document())


def load_handlers() -> None:
    """Import every module of ``vzcloud.server.routes`` so their handlers register."""
    for mod in pkgutil.iter_modules(routes_pkg.__path__):
        importlib.import_module(f"{routes_pkg.__name__}.{mod.name}")


def create_app(config: ServerConfig, cloud: CloudServer | None = None) -> Starlette:
    """The ASGI app of one embedded cloud. ``app.state.cloud`` is its CloudServer."""
    load_handlers()
    cloud = cloud or CloudServer(config)
    grouped: dict[str, dict[str, Endpoint]] = defaultdict(dict)
    for ep in ENDPOINTS:
        grouped[_starlette_path(ep.path)][ep.method] = ep
    # Templates with fixed text first, so "/playlists/{uid}/items" wins over "/playlists/{uid}".
    ordered = sorted(grouped.items(), key=lambda kv: (-kv[0].count("/"), "{" in kv[0]))
    every_method = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    app_routes = [
        Route(BASE_PATH + path, _dispatcher(cloud, methods), methods=every_method)
        for path, methods in ordered
    ]
    # Outside the endpoint table (see vzcloud.server.openapi): no auth, GET/HEAD only.
    app_routes.append(Route(openapi.OPENAPI_PATH, _openapi, methods=every_method))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return error_response(E.MethodNotAllowedError(f"{request.method} is not allowed here"))
        path = request.scope.get("path", "")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
            # A newline keeps "{path}" from matching; it is a bad name, not a bad endpoint.
            return error_response(E.BadRequestError(
                "invalid URL path: a name cannot contain control characters"))
        return error_response(
            E.NotFoundError(f"no such endpoint: {request.url.path}", error="no_such_endpoint")
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(E.ServerError("internal server error"))

    app = Starlette(
        routes=app_routes,
        exception_handlers={HTTPException: not_found, 404: not_found, 405: not_found,
                            500: server_error},
    )
    app.state.cloud = cloud
    return app
