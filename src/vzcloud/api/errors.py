"""The error tree of the Cloud API and the one table between HTTP statuses and errors.

The SDK raises these when a response carries an error status; the embedded server raises
the very same classes inside its handlers and the router turns them back into the status
and JSON body (``{"error": ..., "error_description": ...}``) through the same table. So a
status and its error class are declared exactly once, here.

The seed's classes are ``CloudError``, ``UnauthorizedError``, ``NotFoundError``,
``ConflictError`` and ``OutOfSyncError``; every other class derives from one of them so
that code written against the seed catches everything it used to.
"""

from __future__ import annotations

from typing import Any


class CloudError(Exception):
    """Any failure of a Cloud API call: an HTTP error status or a network failure.

    ``status`` is the HTTP status (``None`` for network failures), ``error`` the
    machine-readable code of the JSON body and ``description`` its human text.
    """

    status: int | None = 500
    error: str = "server_error"

    def __init__(
        self,
        description: str = "",
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(description or self.error)
        self.description = description
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error
        self.retry_after = retry_after
        self.body = body

    def to_json(self) -> dict[str, str]:
        """The wire body for this error."""
        return {"error": self.error, "error_description": self.description or self.error}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, error={self.error!r}, description={self.description!r})"


class BadRequestError(CloudError):
    """400: a malformed parameter, path or request body."""

    status = 400
    error = "invalid_request"


class UnauthorizedError(CloudError):
    """401: a missing, expired or revoked token, or a bad auth code / refresh token."""

    status = 401
    error = "invalid_token"


class ForbiddenError(CloudError):
    """403: authenticated, but not allowed (another account's item, a read-only item)."""

    status = 403
    error = "forbidden"


class NotFoundError(CloudError):
    """404: no such file, folder, virtual folder, playlist, share or contact."""

    status = 404
    error = "not_found"


class MethodNotAllowedError(CloudError):
    """405: the path exists but not with this HTTP method."""

    status = 405
    error = "method_not_allowed"


class ConflictError(CloudError):
    """409: a name conflict (``safe=true``) or a stale contact ``version``."""

    status = 409
    error = "conflict"


class GoneError(NotFoundError):
    """410: the item exists but is in the trash (or a share link has expired)."""

    status = 410
    error = "gone"


class QuotaExceededError(CloudError):
    """413: over quota, or a body / file over the size limit."""

    status = 413
    error = "quota_exceeded"


class UnsupportedMediaTypeError(CloudError):
    """415: e.g. a thumbnail of something that is not an image."""

    status = 415
    error = "unsupported_media_type"


class RangeNotSatisfiableError(CloudError):
    """416: a ``Range`` header outside the file."""

    status = 416
    error = "range_not_satisfiable"


class HeaderFieldsTooLargeError(CloudError):
    """431: the request line and headers are over the server's limit."""

    status = 431
    error = "request_header_fields_too_large"


class RateLimitedError(CloudError):
    """429: too many requests; ``retry_after`` says when to come back."""

    status = 429
    error = "rate_limited"


class ServerError(CloudError):
    """500: the server failed."""

    status = 500
    error = "server_error"


class BadGatewayError(ServerError):
    status = 502
    error = "bad_gateway"


class ServiceUnavailableError(ServerError):
    """503: temporarily unavailable; ``retry_after`` says when to come back."""

    status = 503
    error = "service_unavailable"


class GatewayTimeoutError(ServerError):
    status = 504
    error = "gateway_timeout"


class OutOfSyncError(CloudError):
    """205 on fullview: the etag is older than the change log; resync without an etag."""

    status = 205
    error = "out_of_sync"


class NetworkError(CloudError):
    """The request never got an HTTP answer (connection refused, reset, timed out)."""

    status = None
    error = "network_error"


# The one status -> error table. Statuses not listed map by class: 4xx to CloudError with
# that status, 5xx to ServerError.
ERRORS_BY_STATUS: dict[int, type[CloudError]] = {
    cls.status: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        MethodNotAllowedError,
        ConflictError,
        GoneError,
        QuotaExceededError,
        UnsupportedMediaTypeError,
        RangeNotSatisfiableError,
        HeaderFieldsTooLargeError,
        RateLimitedError,
        ServerError,
        BadGatewayError,
        ServiceUnavailableError,
        GatewayTimeoutError,
        OutOfSyncError,
    )
}

# Statuses after which repeating the same idempotent request may succeed.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def error_for_status(
    status: int, body: Any = None, retry_after: float | None = None
) -> CloudError:
    """Build the error that a response with ``status`` and decoded JSON ``body`` means."""
    cls = ERRORS_BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else CloudError
    error = description = None
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), str) else None
        description = body.get("error_description")
        if not isinstance(description, str):
            description = None
    return cls(
        description or f"HTTP {status}",
        status=status,
        error=error,
        retry_after=retry_after,
        body=body,
    )
