"""Logging for the ``vzcloud`` command: one readable line per record on stderr.

``setup(level)`` configures the root logger once per process (calling it again replaces
the handler it installed, not others'). Our own loggers (``vzcloud.*``) log at ``level``;
third-party ones (uvicorn, httpx, ...) only from WARNING up unless ``level`` is DEBUG, so
a normal run shows our request lines, not library chatter.

Under systemd, when stderr is the journal (``$JOURNAL_STREAM`` names stderr's device and
inode), lines carry no timestamp (the journal has its own) and start with the syslog
priority (``<4>`` for a warning), so ``journalctl -p warning`` filters them.

Secrets never reach a record in the first place (the server's access log redacts query
strings; profiles redact their repr); nothing here filters text.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
JOURNAL_FORMAT = "<%(priority)d>%(name)s: %(message)s"
_QUIET_LIBRARIES = ("uvicorn", "uvicorn.error", "httpx", "httpcore", "asyncio", "trio")
# sd-daemon(3) priorities: the journal reads a leading <N> as the line's syslog level.
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                    logging.CRITICAL: 2}

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
    handler.setFormatter(_JournalFormatter(JOURNAL_FORMAT) if stream is None and to_journal()
                         else logging.Formatter(FORMAT, DATE_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    _installed = handler
    logging.getLogger("vzcloud").setLevel(numeric)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else
                                         max(numeric, logging.WARNING))


def to_journal() -> bool:
    """Whether stderr is connected to systemd's journal (``$JOURNAL_STREAM`` is
    ``DEVICE:INODE`` of the journal's stream, as sd_journal_stream_fd documents)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return super().format(record)
