"""The control channel of a running mount: a Unix socket that ``vzcloud status``,
``vzcloud refresh`` and ``vzcloud umount`` ask, so the command line never guesses.

Protocol: line-delimited JSON over a stream socket. The client sends one object per
line, ``{"request": NAME}``; the mount answers each with one line, ``{"ok": true, ...}``
or ``{"ok": false, "error": "<what went wrong>"}``. A connection may carry several
requests; a line longer than ``MAX_LINE`` bytes is refused and ends the connection.

- ``status`` -> ``{"ok": true, "status": {...}}``, the fields of ``MountStatus.snapshot``.
- ``refresh`` -> asks the poller for a sync at once and answers once a sync that started
  after the request has been applied: ``{"ok": true, "synced_at": EPOCH}``; ``ok: false``
  with the error when that sync failed (the cloud unreachable, say) or none completed
  within ``REFRESH_TIMEOUT``.

The socket (its path is chosen by the caller: the CLI puts it next to the mount's record
under the runtime directory) is created with mode 0600 inside a 0700 directory: only
the mount's user may talk to it. A stale socket file left by a killed mount is replaced.

Concurrency contract: ``serve`` runs as a task of the mount's nursery on the trio thread,
one task per connection. A request reads in-memory counters and a few short SQLite
statements inline (as handlers do) and the block cache's volume in a worker thread; a
refresh waits on the syncer without holding anything. FUSE handlers never wait for this
channel, and a slow or silent client only holds its own task.

``RecentErrors`` keeps the last warnings and errors of the ``vzcloud`` loggers (a ring
buffer) for ``status``. ``request(path, name)`` is the blocking client the CLI uses.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from vzcloud.fs.mount import MountConfig, MountParts

log = logging.getLogger("vzcloud.fs.control")

MAX_LINE = 64 << 10
REFRESH_TIMEOUT = 30.0
RECENT_ERRORS = 20
JOBS_SHOWN = 50  # queued uploads listed one by one; the totals count all of them
# An AF_UNIX path holds at most 107 bytes (sun_path is 108 with the NUL).
MAX_SOCKET_PATH = 107


class ControlError(Exception):
    """The control channel cannot be reached or refused a request (message says why)."""


class RecentErrors(logging.Handler):
    """The last ``size`` WARNING-or-worse records of the ``vzcloud`` loggers, oldest
    first. ``install()`` attaches it; ``remove()`` detaches it. Thread-safe (records
    also come from worker threads)."""

    def __init__(self, size: int = RECENT_ERRORS) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, Any]] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break the mount
            message = str(record.msg)
        self.records.append({"time": record.created, "level": record.levelname,
                             "logger": record.name, "message": message})

    def install(self) -> RecentErrors:
        logging.getLogger("vzcloud").addHandler(self)
        return self

    def remove(self) -> None:
        logging.getLogger("vzcloud").removeHandler(self)


class MountStatus:
    """What ``status`` reports about one running mount (see ``snapshot``). ``state()``
    says where the mount is in its life: ``starting``, ``mounted``, ``draining``."""

    def __init__(self, parts: MountParts, config: MountConfig, state: Callable[[], str],
                 recent: RecentErrors) -> None:
        self.parts = parts
        self.config = config
        self.state = state
        self.recent = recent
        self.started_at = time.time()

    async def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture of the mount: identity, sync, upload queue, block cache,
        recent warnings. Times are epoch seconds; sizes bytes."""
        now = time.time()
        parts, meta = self.parts, self.parts.meta
        last_sync = parts.syncer.last_sync
        count, queued_bytes, failing, rows = meta.upload_queue(JOBS_SHOWN)
        jobs = []
        for row in rows:
            path_parts = meta.path_parts(row["ino"])
            jobs.append({
                "path": "/" + "/".join(path_parts) if path_parts is not None else None,
                "size": row["size"], "queued_at": row["queued_at"],
                "attempts": row["attempts"], "last_error": row["last_error"],
                "next_try": row["next_try"] or None,
            })
        volume = await trio.to_thread.run_sync(parts.blocks.volume)
        hits, misses = parts.blocks.hits, parts.blocks.misses
        return {
            "pid": os.getpid(),
            "state": self.state(),
            "mountpoint": str(self.config.mountpoint),
            "cache_dir": str(self.config.cache_dir),
            "read_only": self.config.options.read_only,
            "started_at": self.started_at,
            "sync": {
                "last_sync": last_sync,
                "age": None if last_sync is None else max(0.0, now - last_sync),
                "poll_interval": self.config.poll_interval,
            },
            "uploads": {
                "queued": count, "queued_bytes": queued_bytes, "failing": failing,
                "uploaded": parts.uploader.uploaded, "failed_attempts": parts.uploader.failures,
                "jobs": jobs,
            },
            "cache": {
                "bytes": volume, "limit": self.config.cache_size, "hits": hits,
                "misses": misses,
                "hit_rate": hits / (hits + misses) if hits + misses else None,
            },
            "recent_errors": list(self.recent.records),
        }

    async def refresh(self) -> dict[str, Any]:
        syncer = self.parts.syncer
        ticket = syncer.request_sync()
        with trio.move_on_after(REFRESH_TIMEOUT):
            error = await syncer.wait_applied(ticket)
            if error is not None:
                return {"ok": False, "error": f"the sync failed: {error}"}
            return {"ok": True, "synced_at": syncer.last_sync}
        return {"ok": False, "error": f"no sync completed within {REFRESH_TIMEOUT:.0f} s"}


async def serve(status: MountStatus, path: Path,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on ``path`` until cancelled, then remove the socket file. A socket that
    cannot be created is logged and the mount goes on without one (``status`` then says
    the channel is unreachable)."""
    try:
        listener = await _listen(path)
    except OSError as exc:
        log.warning("no control channel (%s): 'vzcloud status' and 'refresh' will not "
                    "reach this mount", exc)
        task_status.started()
        return
    try:
        async with listener:
            task_status.started()
            async with trio.open_nursery() as nursery:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(_converse, status, stream)
    finally:
        _unlink_socket(path)


async def _listen(path: Path) -> trio.SocketListener:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise OSError(f"socket path {path} is longer than {MAX_SOCKET_PATH} bytes")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _unlink_socket(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        # Not the umask (process-wide, and worker threads create files): the directory
        # is 0700, so nobody else can reach the socket before this chmod either.
        os.chmod(path, 0o600)
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


def _unlink_socket(path: Path) -> None:
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass


async def _converse(status: MountStatus, stream: trio.SocketStream) -> None:
    async with stream:
        buffer = b""
        try:
            while True:
                chunk = await stream.receive_some(MAX_LINE)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    answer = await _answer(status, line)
                    await stream.send_all(json.dumps(answer).encode() + b"\n")
                if len(buffer) > MAX_LINE:
                    await stream.send_all(json.dumps(
                        {"ok": False, "error": f"request longer than {MAX_LINE} bytes"}
                    ).encode() + b"\n")
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client went away


async def _answer(status: MountStatus, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except ValueError:
        return {"ok": False, "error": "not a JSON line"}
    name = request.get("request") if isinstance(request, dict) else None
    if name == "status":
        return {"ok": True, "status": await status.snapshot()}
    if name == "refresh":
        return await status.refresh()
    return {"ok": False, "error": f"unknown request {name!r} (known: status, refresh)"}


# The client (blocking; the CLI's side) -----------------------------------------------


def request(path: Path, name: str, timeout: float = 10.0) -> dict[str, Any]:
    """Send request ``name`` to the mount listening on ``path`` and return its answer
    (``ok`` true). Raises ControlError when the socket cannot be reached, the answer is
    not one JSON line, or the mount refused the request."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(os.fspath(path))
            sock.sendall(json.dumps({"request": name}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise ControlError(f"no control socket at {path}") from None
        except ConnectionRefusedError:
            raise ControlError(f"nothing listens on {path} (the mount process is gone?)"
                               ) from None
        except TimeoutError:
            raise ControlError(f"the mount did not answer within {timeout:.0f} s") from None
        except OSError as exc:
            raise ControlError(f"cannot talk to {path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"the mount sent a garbled answer on {path}") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ControlError(str(error or "the mount refused the request"))
    return answer
