"""The call flow of the SDK, written once as generators that both clients drive.

As in httpx's ``Auth.auth_flow``, a flow is a generator that does no I/O itself: it
yields an *instruction* (send this request, sleep, refresh the tokens, run this blocking
function, copy this response body, run these flows side by side) and is sent the
outcome. ``Cloud`` executes instructions synchronously and ``AsyncCloud`` with ``await``;
what to send, when to retry, when to refresh and what a response means is decided here
and in ``vzcloud.api.protocol``, once for both.

Outcomes sent back into a flow:

- ``Send`` -> an ``HttpResponse``, or a ``TransportFailure`` when no response came;
- ``Sleep`` -> None;
- ``Refresh`` -> the access token to use now (None = there is no way to refresh);
- ``Blocking`` -> the function's return value (its exception is thrown into the flow);
- ``Copy`` -> the number of bytes copied, or a ``TransportFailure`` if the body broke;
- ``Gather`` -> the flows' results in order (the first error is raised);
- ``Notify`` -> None.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vzcloud.api import errors as E
from vzcloud.api.endpoints import BY_NAME, DEFAULT_SERVER
from vzcloud.api.models import Token
from vzcloud.api.protocol import Body, HttpRequest, HttpResponse, build_request, parse_response

T = TypeVar("T")


# Instructions ----------------------------------------------------------------------------


@dataclass
class Send:
    """Send ``request``. ``stream``: leave a 2xx body unread (``HttpResponse.stream``)
    for a later ``Copy``; an error response is always read whole."""

    request: HttpRequest
    stream: bool = False


@dataclass
class Sleep:
    seconds: float


@dataclass
class Refresh:
    """Get a fresh access token because ``stale`` was refused; ``stale=None`` forces a
    refresh. The driver serialises refreshes (one at a time per client) and runs
    ``refresh_flow``, which refreshes only if nobody has replaced ``stale`` yet."""

    stale: str | None


@dataclass
class Blocking:
    """Run ``fn()`` where blocking is allowed (a worker thread in AsyncCloud)."""

    fn: Callable[[], Any]


@dataclass
class Copy:
    """Copy the streamed body of ``response`` in pieces of about ``block`` bytes: each
    piece goes to ``write`` (blocking; a worker thread in AsyncCloud), then ``progress``
    is called with its length (on the caller's thread or event loop). The driver closes
    the response afterwards, whatever happens."""

    response: HttpResponse
    write: Callable[[bytes], None]
    progress: Callable[[int], None] | None = None
    block: int = 1 << 20


@dataclass
class Gather:
    """Run ``flows`` with at most ``limit`` at a time (AsyncCloud runs them concurrently,
    Cloud one after another); the result is their results in order."""

    flows: Sequence[Generator[Any, Any, Any]]
    limit: int = 4


@dataclass
class Notify:
    """Tell the user about rotated tokens: ``on_refreshed(token)``."""

    token: Token


Instruction = Send | Sleep | Refresh | Blocking | Copy | Gather | Notify
Flow = Generator[Instruction, Any, T]


CONNECT_FAILED = "connect_failed"  # NetworkError.error when no connection could be made


@dataclass
class TransportFailure:
    """No (complete) HTTP response: ``error`` is the NetworkError to raise if we give up.

    ``reached_server`` is False only when the request provably never left (the connection
    could not be made), which is what makes repeating a non-idempotent request safe."""

    error: E.NetworkError
    reached_server: bool


# Configuration and shared state ----------------------------------------------------------


@dataclass
class RetryPolicy:
    """Jittered exponential backoff, bounded in attempts and in total time.

    Attempt ``n`` (0-based) waits a random time in ``[d/2, d]`` with
    ``d = min(max_delay, base_delay * 2**n)``, or exactly ``Retry-After`` when the
    server sent one. A wait that would end past ``max_total`` seconds after the first
    attempt, or a ``Retry-After`` longer than ``max_delay``, means giving up now.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return retry_after
        d = min(self.max_delay, self.base_delay * (2**attempt))
        return rng.uniform(d / 2, d)


@dataclass
class Session:
    """What one client knows: its OAuth client, server and current tokens.

    Concurrency contract: ``access_token`` and ``refresh_token`` change only inside
    ``refresh_flow``/``token_flow``, which the drivers run under their refresh lock
    (``threading.Lock`` in Cloud, ``anyio.Lock`` in AsyncCloud); flows read
    ``access_token`` unlocked, once per request they build, and a request refused with
    an old token asks for a ``Refresh`` naming the token it used.
    """

    client_key: str
    client_secret: str
    callback_url: str
    access_token: str | None = None
    refresh_token: str | None = None
    base_url: str = DEFAULT_SERVER
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    # The refresh token whose refresh failed: it is never presented again (a second try
    # with a token the server may have spent would revoke the whole token family).
    failed_refresh_token: str | None = None
    # Counts refreshes (tests and logs); guarded by the refresh lock.
    refreshes: int = 0
    # Reads the tokens saved where on_refreshed saves them (a profile), if another
    # process may rotate them too: a blocking function, called before each refresh.
    stored_tokens: Callable[[], Token | None] | None = None

    def set_tokens(self, token: Token) -> None:
        self.access_token = token.access_token
        if token.refresh_token:
            self.refresh_token = token.refresh_token

    def current_token(self) -> Token:
        return Token(access_token=self.access_token or "", refresh_token=self.refresh_token)


# Flows -------------------------------------------------------------------------------------


def call_flow(
    session: Session,
    endpoint: str,
    args: Mapping[str, Any],
    *,
    url: str | None = None,
    content: Body | None = None,
    stream: bool = False,
) -> Flow[Any]:
    """Call one endpoint; the result is what ``protocol.parse_response`` makes of it.

    - 401 on a token-authenticated endpoint: one ``Refresh``, then one more try with the
      token it gives; a second 401 is raised (UnauthorizedError).
    - Idempotent endpoints are retried on a transport failure and on 429/502/503/504;
      others only when the request provably never reached the server. Retries follow
      ``session.retry``; when they run out, the last error is raised.
    """
    ep = BY_NAME[endpoint]
    policy = session.retry
    started = session.clock()
    attempt = 0
    refreshed = False
    while True:
        token = session.access_token
        request = build_request(ep, args, session.base_url, token, url=url, content=content)
        outcome = yield Send(request, stream)
        error: E.CloudError
        if isinstance(outcome, TransportFailure):
            error = outcome.error
            retryable = ep.idempotent or not outcome.reached_server
        else:
            if (outcome.status == 401 and not refreshed
                    and ep.auth in ("bearer", "bearer_or_query")):
                refreshed = True
                if (yield Refresh(stale=token)) is not None:
                    continue
            try:
                return parse_response(ep, outcome, args)
            except E.CloudError as exc:
                error = exc
            retryable = ep.idempotent and error.status in E.RETRYABLE_STATUSES
        if not retryable or attempt + 1 >= policy.max_attempts:
            raise error
        if error.retry_after is not None and error.retry_after > policy.max_delay:
            raise error
        wait = policy.delay(attempt, error.retry_after, session.rng)
        if session.clock() - started + wait > policy.max_total:
            raise error
        yield Sleep(wait)
        attempt += 1


def token_flow(session: Session, **grant: str) -> Flow[Token]:
    """POST the token endpoint with ``grant`` plus our client credentials; on success the
    session holds the new tokens. Run under the refresh lock."""
    args = {**grant, "client_id": session.client_key, "client_secret": session.client_secret}
    try:
        token: Token = yield from call_flow(session, "token", args)
    except E.BadRequestError as exc:
        if exc.error != "invalid_grant":
            raise
        # RFC 6749 answers a bad code or refresh token with 400 invalid_grant; the seed
        # documents UnauthorizedError for both.
        raise E.UnauthorizedError(exc.description, status=exc.status, error=exc.error,
                                  body=exc.body) from None
    if not token.access_token:
        raise E.CloudError("the token endpoint returned no access token", error="bad_response")
    session.set_tokens(token)
    return token


def refresh_flow(session: Session, stale: str | None) -> Flow[Token | None]:
    """The body of ``Refresh``: run by a driver while it holds the session's refresh lock.

    If ``stale`` is no longer the current access token, someone refreshed while we
    waited: the current tokens are the answer and nothing is spent. Likewise when the
    saved tokens (``session.stored_tokens``) hold a newer refresh token than ours.
    Otherwise the refresh token is exchanged (single use: the server rotates it) and
    ``on_refreshed`` is notified. None = there is no refresh token (the caller raises
    its 401).
    """
    if stale is not None and session.access_token != stale and session.access_token:
        return session.current_token()
    rt = session.refresh_token
    if not rt:
        if stale is None:
            raise E.UnauthorizedError("no refresh token: authorize again", error="invalid_grant")
        return None
    if session.stored_tokens is not None:
        stored: Token | None = yield Blocking(session.stored_tokens)
        if stored is not None and stored.refresh_token and stored.refresh_token != rt:
            # Another process sharing our saved tokens has rotated them: ours is spent.
            session.set_tokens(stored)
            return stored
    if rt == session.failed_refresh_token:
        raise E.UnauthorizedError("the refresh token was refused: authorize again",
                                  error="invalid_grant")
    try:
        token = yield from token_flow(session, grant_type="refresh_token", refresh_token=rt)
    except E.CloudError as exc:
        if exc.error != CONNECT_FAILED:  # the token may have been spent: never resend it
            session.failed_refresh_token = rt
        raise
    session.refreshes += 1
    yield Notify(token)
    return token
