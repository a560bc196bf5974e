"""The one table from cloud errors to errno, and the filesystem's own error type.

Every FUSE handler goes through ``operations.py``'s wrapper, which calls ``to_errno`` for
anything raised; so a cloud failure always reaches a program as one of these errno
values, with a log line naming the operation.
"""

from __future__ import annotations

import errno

from vzcloud.api import errors as E


class FsError(OSError):
    """A failure with a definite errno, raised by the filesystem core."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(code, message or errno.errorcode.get(code, str(code)))


# Most specific class first: lookups walk the MRO of the raised error.
CLOUD_ERRNO: dict[type[E.CloudError], int] = {
    E.GoneError: errno.ENOENT,
    E.NotFoundError: errno.ENOENT,
    E.ConflictError: errno.EEXIST,
    E.UnauthorizedError: errno.EACCES,
    E.ForbiddenError: errno.EACCES,
    E.BadRequestError: errno.EINVAL,
    E.QuotaExceededError: errno.EDQUOT,
    E.UnsupportedMediaTypeError: errno.EINVAL,
    E.RateLimitedError: errno.EAGAIN,
    E.NetworkError: errno.EIO,
    E.ServerError: errno.EIO,
    E.OutOfSyncError: errno.EIO,
    E.CloudError: errno.EIO,
}


def to_errno(exc: BaseException) -> int:
    """The errno for an exception raised below a FUSE handler."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    if isinstance(exc, E.CloudError):
        for cls in type(exc).__mro__:
            if cls in CLOUD_ERRNO:
                return CLOUD_ERRNO[cls]
    return errno.EIO


LOGIN_HINT = ("the cloud refused the mount's credentials: sign in again with 'vzcloud "
              "login' (the mount adopts the new tokens without remounting)")


def failure_text(exc: BaseException) -> str:
    """A failure as the log shows it: refused credentials also say what to do."""
    if isinstance(exc, E.UnauthorizedError):
        return f"{exc}; {LOGIN_HINT}"
    return str(exc)
