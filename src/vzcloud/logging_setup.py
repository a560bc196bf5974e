"""Logging for the ``vzcloud`` command: one readable line per record on stderr.

``setup(level)`` configures the root logger once per process (calling it again replaces
the handler it installed, not others'). Our own loggers (``vzcloud.*``) log at ``level``;
third-party ones (uvicorn, httpx, ...) only from WARNING up unless ``level`` is DEBUG, so
a normal run shows our request lines, not library chatter.

Secrets never reach a record in the first place (the server's access log redacts query
strings; profiles redact their repr); nothing here filters text.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_QUIET_LIBRARIES = ("uvicorn", "uvicorn.error", "httpx", "httpcore", "asyncio", "trio")

_installed: logging.Handler | None = None


def setup(level: str | int = "info", stream: TextIO | None = None) -> None:
    """Send log records at ``level`` (a name of LEVELS or a number) and above to stderr."""
    global _installed
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    _installed = handler
    logging.getLogger("vzcloud").setLevel(numeric)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else
                                         max(numeric, logging.WARNING))
