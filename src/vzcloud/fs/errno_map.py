"""The one table from failures to errno, and the filesystem's own error type.

Every FUSE handler goes through ``operations.py``'s wrapper, which calls ``known_errno``
for anything raised; so a cloud failure, a disk failure (OSError) or a disk-level failure
of the metadata database (SQLite) always reaches a program as an errno value, with a log
line naming the operation. Anything else is a bug: EIO with a traceback in the log.

A full cache disk is ENOSPC whichever layer noticed it: a staging write (OSError) or the
metadata database ("database or disk is full", SQLITE_FULL). The caller learns it from
``write()`` or ``close()``; a ``close()`` that fails acknowledged nothing.
"""

from __future__ import annotations

import errno
import sqlite3

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


# SQLite primary result codes (the low byte of an extended code) that say the disk or
# the database file failed, not the program; any other SQLite error is a bug.
SQLITE_ERRNO: dict[int, int] = {
    sqlite3.SQLITE_FULL: errno.ENOSPC,  # "database or disk is full"
    sqlite3.SQLITE_IOERR: errno.EIO,
    sqlite3.SQLITE_CANTOPEN: errno.EIO,
    sqlite3.SQLITE_READONLY: errno.EROFS,
    sqlite3.SQLITE_NOMEM: errno.ENOMEM,
}


def known_errno(exc: BaseException) -> int | None:
    """The errno of a failure with a known meaning: an OSError, a CloudError, a
    disk-level SQLite error. None for anything else (a bug)."""
    if isinstance(exc, OSError):
        return exc.errno or errno.EIO
    if isinstance(exc, E.CloudError):
        for cls in type(exc).__mro__:
            if cls in CLOUD_ERRNO:
                return CLOUD_ERRNO[cls]
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return SQLITE_ERRNO.get(code & 0xFF)
    return None


def to_errno(exc: BaseException) -> int:
    """The errno for an exception raised below a FUSE handler (EIO for a bug)."""
    code = known_errno(exc)
    return errno.EIO if code is None else code


LOGIN_HINT = ("the cloud refused the mount's credentials: sign in again with 'vzcloud "
              "login' (the mount adopts the new tokens without remounting)")


def failure_text(exc: BaseException) -> str:
    """A failure as the log shows it: refused credentials also say what to do."""
    if isinstance(exc, E.UnauthorizedError):
        return f"{exc}; {LOGIN_HINT}"
    return str(exc)
