"""What both clients need of httpx: request/response conversion and the one table that
turns transport exceptions into ``TransportFailure`` (as httpx's own
``map_httpcore_exceptions`` does one layer down)."""

from __future__ import annotations

import httpcore
import httpx

from vzcloud.api import errors as E
from vzcloud.api.protocol import HttpRequest, HttpResponse
from vzcloud.sdk.flows import CONNECT_FAILED, TransportFailure

# Generous read/write timeouts: a 16 MiB chunk on a slow uplink takes a while.
DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=120.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16)

# httpcore receives a response body 64 KiB at a time, each read a trip through the event
# loop and h11; 1 MiB reads (what the socket has, up to that) cost far less per byte
# (measured on the mount: a cold 384 MiB sequential read took 4.2 s instead of 6.2 s).
# httpcore offers no option for it, only this class attribute of its connections.
RECEIVE_SIZE = 1 << 20
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = RECEIVE_SIZE
httpcore.HTTP11Connection.READ_NUM_BYTES = RECEIVE_SIZE

# Exceptions raised before a single byte of the request could have reached the server.
_NEVER_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: the API authenticates with bearer tokens and sets
    no cookies, and httpx's parsing of every response for ``Set-Cookie`` (through
    ``http.cookiejar``) cost ~5% of the CPU of a small GET."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class AsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` that neither keeps nor sends cookies (as the seed SDK, which
    keeps no session)."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass  # httpx's constructor sets it; there is nothing to keep


def transport_failure(exc: httpx.TransportError, request: HttpRequest | None = None) -> TransportFailure:
    """The failure a transport exception means; ``reached_server`` is False only when
    the request provably never left this machine."""
    never_sent = isinstance(exc, _NEVER_SENT)
    where = f" ({request.method} {request.endpoint})" if request is not None else ""
    error = E.NetworkError(
        f"{type(exc).__name__}: {exc}{where}" if str(exc) else f"{type(exc).__name__}{where}",
        error=CONNECT_FAILED if never_sent else "network_error",
    )
    return TransportFailure(error=error, reached_server=not never_sent)


def to_response(resp: httpx.Response, content: bytes = b"", stream: object = None) -> HttpResponse:
    return HttpResponse(
        status=resp.status_code,
        headers={k.lower(): v for k, v in resp.headers.items()},
        content=content,
        stream=stream,
    )


def is_success(status: int) -> bool:
    """A status whose body is a result (205 is fullview's "out of sync", an error)."""
    return 200 <= status < 300 and status != 205
