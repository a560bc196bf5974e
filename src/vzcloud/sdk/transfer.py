"""Uploads and downloads as flows (see ``flows``), streaming local files in blocks.

Memory contract: no flow or driver holds more than one block (``BLOCK`` bytes) of a file
per request in flight, whatever the file's size. A file is read twice on upload: once to
hash it (the whole-file SHA-256 goes with the intent and every chunk) and once to send.
A source held in memory (``io.BytesIO``) is the exception: it is hashed on the caller's
thread when small (``INLINE_HASH``), and sent unchunked as one ``bytes`` body (no reads
in worker threads; AsyncCloud sends it with its lean transport).

Uploads: intent -> one POST of the whole file (under ``chunk_threshold``) or chunks of
``chunk_size`` bytes POSTed by ``Gather`` (concurrently in AsyncCloud), each retried
alone by its own call flow (a chunk upload is idempotent: it fills the same slot), then
commit. Downloads: fresh metadata (size, checksum) -> ranged GETs from where the local
bytes end, resuming after a broken body -> the SHA-256 of the result is checked against
the cloud's checksum.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from vzcloud.api import errors as E
from vzcloud.api.models import CloudFile
from vzcloud.api.protocol import HttpResponse
from vzcloud.sdk.flows import (
    Blocking,
    Copy,
    Flow,
    Gather,
    Session,
    Sleep,
    TransportFailure,
    call_flow,
)

MiB = 1 << 20
BLOCK = 1 * MiB  # read/write granularity of local files
CHUNK_THRESHOLD = 100 * MiB  # files this large or larger are uploaded in chunks
DEFAULT_CHUNK_SIZE = 16 * MiB
PARALLEL_CHUNKS = 4
# An in-memory source this small is hashed where the flow runs (the event loop, in
# AsyncCloud): ~4 µs per KiB, less than a trip to a worker thread and back.
INLINE_HASH = 64 << 10

ProgressCallback = Callable[[int, int], None]  # (bytes done, total bytes)
LocalFile = str | os.PathLike[str] | IO[bytes]


class Progress:
    """Turns per-part byte counts into ``callback(done, total)``, never going backwards:
    a part that is resent after a failure counts only beyond what it reached before."""

    def __init__(self, total: int, callback: ProgressCallback | None, done: int = 0) -> None:
        self.total = total
        self.callback = callback
        self.base = done
        self.parts: dict[int, int] = {}
        self.reported = -1
        self.report()

    def report(self) -> None:
        done = self.base + sum(self.parts.values())
        if self.callback is not None and done > self.reported:
            self.reported = done
            self.callback(done, self.total)

    def part(self, index: int) -> Callable[[int], None]:
        """A callback taking how far part ``index`` got in its current attempt."""

        def reached(n: int) -> None:
            if n > self.parts.get(index, 0):
                self.parts[index] = n
                self.report()

        return reached

    def add(self, n: int) -> None:
        self.base += n
        self.report()

    def resize(self, total: int) -> None:
        """The whole turned out to be ``total`` bytes (a file replaced while downloading):
        report again with it."""
        self.total = total
        self.reported = -1
        self.report()

    def reset(self) -> None:
        """Start over from zero (a download restarted from the first byte)."""
        self.base = 0
        self.parts.clear()
        self.reported = -1
        self.report()


# Local files -----------------------------------------------------------------------------


class LocalSource:
    """A local file to upload: a path, or a seekable binary file object read from its
    current position to its end. ``read_at`` may be called from several threads."""

    def __init__(self, file_or_path: LocalFile) -> None:
        self._lock = threading.Lock()
        self._owned_fd: int | None = None
        self._fileobj: IO[bytes] | None = None
        self._fd: int | None = None
        if isinstance(file_or_path, str | os.PathLike):
            path = os.fspath(file_or_path)
            self._owned_fd = self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self.name = os.path.basename(path)
            self.base = 0
            self.size = os.fstat(self._fd).st_size
            return
        f = file_or_path
        if not (hasattr(f, "read") and hasattr(f, "seek")) or not f.seekable():
            raise TypeError("upload needs a path or a seekable binary file object")
        self._fileobj = f
        self.name = os.path.basename(str(getattr(f, "name", "") or ""))
        self.base = f.tell()
        self.size = f.seek(0, io.SEEK_END) - self.base
        f.seek(self.base)
        try:
            fd = f.fileno()
            os.fstat(fd)
            self._fd = fd  # pread needs no seek, so parallel chunk reads do not contend
        except (OSError, AttributeError, io.UnsupportedOperation):
            self._fd = None

    @property
    def in_memory(self) -> bool:
        """The bytes are held in memory (an ``io.BytesIO``): reading them never blocks."""
        return isinstance(self._fileobj, io.BytesIO)

    def content(self) -> bytes:
        """The whole upload as bytes: an in-memory source's (no copy when the BytesIO
        holds just these bytes, unchanged), else read like ``sha256`` does."""
        if isinstance(self._fileobj, io.BytesIO):
            with self._lock:
                whole = self._fileobj.getvalue()
            if self.base == 0 and len(whole) == self.size:
                return whole
            return whole[self.base:self.base + self.size]
        return b"".join(self._blocks())

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (relative to where the upload starts)."""
        if self._fd is not None:
            return os.pread(self._fd, n, self.base + offset)
        assert self._fileobj is not None
        with self._lock:
            self._fileobj.seek(self.base + offset)
            data = self._fileobj.read(n)
        if not isinstance(data, bytes):
            raise TypeError("upload needs a file opened in binary mode")
        return data

    def sha256(self) -> str:
        """Lower-case hex SHA-256 of the whole upload, read block by block."""
        h = hashlib.sha256()
        for block in self._blocks():
            h.update(block)
        return h.hexdigest()

    def _blocks(self) -> Iterator[bytes]:
        offset = 0
        while offset < self.size:
            block = self.read_at(offset, min(BLOCK, self.size - offset))
            if not block:
                raise E.CloudError("the file shrank while it was being read", status=None,
                                   error="file_changed")
            yield block
            offset += len(block)

    def close(self) -> None:
        if self._owned_fd is not None:
            os.close(self._owned_fd)
            self._owned_fd = self._fd = None


class FileSlice:
    """A request body: ``length`` bytes of ``source`` from ``offset``, streamed in blocks.

    The transport calls ``read(pos, n)`` (blocking) for successive blocks and ``sent(pos)``
    after handing each one over; a retried request starts again from ``pos = 0``.
    """

    def __init__(self, source: LocalSource, offset: int, length: int,
                 progress: Callable[[int], None] | None = None) -> None:
        self.source = source
        self.offset = offset
        self._length = length
        self._progress = progress

    @property
    def length(self) -> int:
        return self._length

    def read(self, pos: int, n: int) -> bytes:
        data = self.source.read_at(self.offset + pos, min(n, self._length - pos))
        if not data and pos < self._length:
            raise E.CloudError("the file shrank while it was being uploaded", status=None,
                               error="file_changed")
        return data

    def sent(self, pos: int) -> None:
        if self._progress is not None:
            self._progress(pos)


class LocalSink:
    """Where a download goes: a path (kept across attempts, so a partial file can be
    resumed) or a writable binary file object (written from its current position)."""

    def __init__(self, dest: LocalFile, resume: bool) -> None:
        self.dest = dest
        self.resume = resume
        self._file: IO[bytes] | None = None
        self._owned = False
        self.base = 0

    def open(self) -> int:
        """Open the destination; returns how many bytes of it are already there."""
        if isinstance(self.dest, str | os.PathLike):
            fd = os.open(os.fspath(self.dest), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         0o666)
            self._file = os.fdopen(fd, "r+b")
            self._owned = True
            if not self.resume:
                self._file.truncate(0)
            return self._file.seek(0, io.SEEK_END)
        self._file = self.dest
        try:
            self.base = self.dest.tell()
        except (OSError, AttributeError, io.UnsupportedOperation):
            self.base = 0
        return 0

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` bytes and continue writing after them."""
        assert self._file is not None
        self._file.seek(self.base + n)
        self._file.truncate()

    def hash_prefix(self, hasher: Any, n: int) -> None:
        """Feed the first ``n`` bytes already in the destination to ``hasher``."""
        assert self._file is not None
        self._file.seek(self.base)
        left = n
        while left:
            block = self._file.read(min(BLOCK, left))
            if not block:
                raise E.CloudError("the partial download shrank", status=None,
                                   error="file_changed")
            hasher.update(block)
            left -= len(block)
        self._file.seek(self.base + n)

    def close(self) -> None:
        if self._file is None:
            return
        if self._owned:
            self._file.close()
        else:
            self._file.flush()
        self._file = None


# Flows -------------------------------------------------------------------------------------


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_source(file_or_path: LocalFile) -> Flow[LocalSource]:
    """``LocalSource(file_or_path)``: in a worker thread (``Blocking``: it opens or seeks
    a file), except for an ``io.BytesIO``, which cannot block."""
    if isinstance(file_or_path, io.BytesIO):
        return LocalSource(file_or_path)
    source: LocalSource = yield Blocking(lambda: LocalSource(file_or_path))
    return source


def upload_flow(
    session: Session,
    source: LocalSource,
    upload_path: str,
    name: str,
    *,
    chunked: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_threshold: int = CHUNK_THRESHOLD,
    parallel: int = PARALLEL_CHUNKS,
    progress: ProgressCallback | None = None,
    checksum: str | None = None,
) -> Flow[CloudFile]:
    """Upload ``source`` as ``upload_path/name``; the result is the new file's metadata.

    ``checksum``: the source's SHA-256 (hex) if the caller has it already; it is then
    not computed again (the server checks the content against it: a wrong one is a
    400 ``checksum_mismatch``, never a wrong file). An empty file always goes unchunked
    (there is no chunk to send)."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    size = source.size
    use_chunks = size > 0 and (chunked or size >= chunk_threshold)
    whole: bytes | None = None  # an in-memory source sent unchunked: its one body
    if source.in_memory and not use_chunks:
        whole = source.content()
    if checksum is None:
        if whole is None:
            checksum = yield Blocking(source.sha256)
        elif size <= INLINE_HASH:
            checksum = _sha256_hex(whole)
        else:
            checksum = yield Blocking(functools.partial(_sha256_hex, whole))
    intent = yield from call_flow(session, "upload_intent", {
        "path": upload_path, "name": name, "size": size, "checksum": checksum,
        "chunk": use_chunks,
    })
    tracker = Progress(size, progress)
    if not use_chunks:
        result = yield from call_flow(
            session, "upload", {"checksum": checksum, "chunk": False}, url=intent.upload_url,
            content=whole if whole is not None else FileSlice(source, 0, size,
                                                              tracker.part(0)))
        if whole is not None:
            tracker.part(0)(size)  # a body in memory: sent whole once answered
        if not isinstance(result, CloudFile):
            raise E.CloudError("the upload returned no file", status=None, error="bad_response")
        return result
    if not intent.commit_url:
        raise E.CloudError("a chunked upload intent returned no commit URL", status=None,
                           error="bad_response")
    chunks = [
        call_flow(session, "upload", {"checksum": checksum, "chunk": True, "offset": n + 1},
                  url=intent.upload_url,
                  content=FileSlice(source, start, min(chunk_size, size - start),
                                    tracker.part(n)))
        for n, start in enumerate(range(0, size, chunk_size))
    ]
    yield Gather(chunks, limit=max(1, parallel))
    file: CloudFile = yield from call_flow(session, "commit", {}, url=intent.commit_url)
    return file


class _Received:
    """Running state of a download: bytes in the destination and their hash so far."""

    def __init__(self, sink: LocalSink) -> None:
        self.sink = sink
        self.pos = 0
        self.hasher = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.sink.write(data)
        self.hasher.update(data)
        self.pos += len(data)

    def restart(self) -> None:
        self.sink.truncate(0)
        self.pos = 0
        self.hasher = hashlib.sha256()

    def resume_from(self, n: int) -> None:
        self.sink.hash_prefix(self.hasher, n)
        self.pos = n


def _range_start(resp: HttpResponse) -> int | None:
    """Where a 206 body starts (``Content-Range: bytes START-END/SIZE``)."""
    value = resp.header("Content-Range") or ""
    unit, _, spec = value.partition(" ")
    start, _, _ = spec.partition("-")
    return int(start) if unit == "bytes" and start.isdigit() else None


def _file_metadata(session: Session, path: str) -> Flow[CloudFile]:
    meta = yield from call_flow(session, "metadata", {"path": path})
    if not isinstance(meta, CloudFile):
        raise E.BadRequestError(f"{path} is a folder, not a file", error="not_a_file")
    return meta


def download_flow(
    session: Session,
    path: str,
    sink: LocalSink,
    *,
    progress: ProgressCallback | None = None,
) -> Flow[CloudFile]:
    """Download the cloud file at ``path`` into ``sink``; the result is its metadata.

    Bytes already in a path destination are kept and the rest is fetched with ``Range``
    (when ``sink.resume``); a body that breaks off is resumed the same way, up to
    ``session.retry.max_attempts`` times in a row without progress, with ``If-Range``
    naming the ETag of the content received so far: if the file was replaced meanwhile,
    the server sends the new content whole (200), which is taken from byte 0, and the
    file's metadata is fetched again (the result describes the content received). The
    result's SHA-256 must equal the cloud's checksum: on a mismatch after resuming, the
    download starts once more from zero; otherwise CloudError("checksum_mismatch").
    """
    meta = yield from _file_metadata(session, path)
    received = _Received(sink)
    try:
        have: int = yield Blocking(sink.open)
        if have > meta.size:
            have = 0
            yield Blocking(received.restart)
        elif have:
            yield Blocking(lambda: received.resume_from(have))
        tracker = Progress(meta.size, progress, done=received.pos)
        resumed = received.pos > 0
        failures = 0
        etag: str | None = None  # of the content received so far, once a response named it
        while True:
            while received.pos < meta.size:
                start = received.pos
                headers = {"Range": f"bytes={start}-"} if start else {}
                if start and etag:
                    headers["If-Range"] = etag
                resp: HttpResponse = yield from call_flow(
                    session, "download", {"path": path, **headers}, stream=True)
                if start and (resp.status != 206 or _range_start(resp) != start):
                    # The server sent the whole file after all (or, the content having
                    # changed, the new one): take it from the top.
                    yield Blocking(received.restart)
                    tracker.reset()
                replaced = etag is not None and resp.header("ETag") != etag
                etag = resp.header("ETag")
                outcome = yield Copy(resp, received.write, tracker.add)
                if replaced:
                    # The content received now is a newer version: its size and checksum
                    # are in its metadata. Should that be newer still, the checksum test
                    # below starts once more from zero.
                    meta = yield from _file_metadata(session, path)
                    tracker.resize(meta.size)
                    resumed = True
                if isinstance(outcome, TransportFailure):
                    failures = 0 if received.pos > start else failures + 1
                    if failures >= session.retry.max_attempts:
                        raise outcome.error
                    yield Sleep(session.retry.delay(failures, None, session.rng))
            digest = received.hasher.hexdigest()
            if not meta.checksum or digest == meta.checksum:
                return meta
            if not resumed:
                raise E.CloudError(
                    f"downloaded {path} has SHA-256 {digest}, the cloud says {meta.checksum}",
                    status=None, error="checksum_mismatch")
            resumed = False  # the kept bytes were stale: fetch everything once more
            yield Blocking(received.restart)
            tracker.reset()
    finally:
        sink.close()
