"""Uploads: GET /fileupload/intent, POST /upload/{id} (whole file or one chunk), POST
/commit/{id}.

An intent checks the target and the limits and opens a session (``uploads`` table) that
expires after ``config.upload_ttl``. Unchunked: the POST body is the whole file, streamed
into a blob writer (hashed as written), verified against the intent's size and checksum
and committed as a new file version (201 ``{"file"}``, once the blob and its record
are durable: ``_commit_whole``, a group commit across concurrent uploads). Chunked: each
POST stores chunk ``offset`` (1-based) as ``uploads/<id>/<offset>``; chunks may come in
any order and in parallel, and re-sending one replaces it (written to a temporary name,
fsynced, then renamed and the rename fsynced, so a commit never sees half a chunk and a
chunk answered with 201 survives a crash or power loss). The commit concatenates chunks
1..n into a blob writer, verifies size and checksum and commits like an unchunked
upload. So that the commit need not read and hash the whole file again, chunks are also
appended to a blob writer as soon as they are complete in order (``_Assembly``: chunk n
once 1..n-1 are in); the commit uses it when it holds exactly chunks 1..n. It is only a
shortcut: the chunk files stay the truth, and a re-sent chunk already appended (or any
failure) drops it.

Request bodies are streamed: at most ~1 MiB is held in memory per request, and file work
runs in worker threads (``anyio.to_thread``) so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from anyio import to_thread
from starlette.requests import ClientDisconnect, Request

from vzcloud.api import paths as P
from vzcloud.api.errors import (
    BadRequestError,
    CloudError,
    GoneError,
    NotFoundError,
    QuotaExceededError,
)
from vzcloud.api.models import UploadIntent
from vzcloud.durable import fsync_dir
from vzcloud.server import content
from vzcloud.server.app import Ctx
from vzcloud.server.blobs import COPY_BUFFER, HEX64, BlobWriter
from vzcloud.server.routes import handler
from vzcloud.server.store import new_id

BATCH = 1 << 20  # bytes gathered from the request stream before one write in a thread


def _session(ctx: Ctx, upload_id: str) -> sqlite3.Row:
    """The account's live upload session ``upload_id``, or NotFoundError (also when it
    belongs to another account or has expired)."""
    with ctx.store.tx() as db:
        row = db.execute("SELECT * FROM uploads WHERE id=?", (upload_id,)).fetchone()
    if row is None or row["account_id"] != ctx.account.id or row["expires"] < time.time():
        raise NotFoundError(f"no upload session {upload_id!r} (never opened, finished or expired)")
    return row


def _end_session(ctx: Ctx, upload_id: str) -> None:
    with ctx.store.tx() as db:
        db.execute("DELETE FROM uploads WHERE id=?", (upload_id,))
    _drop_assembly(upload_id)
    shutil.rmtree(content.upload_dir(ctx.cloud.config, upload_id), ignore_errors=True)


class _Assembly:
    """Chunks 1..next-1 of a chunked session, appended in order to ``writer`` (hashed on
    the way). ``lock`` serialises appends; ``writer`` is None once dropped."""

    def __init__(self, writer: BlobWriter, expires: float) -> None:
        self.lock = threading.Lock()
        self.writer: BlobWriter | None = writer
        self.next = 1
        self.expires = expires

    def drop(self) -> None:
        """Give up (caller holds ``lock``): the commit reads the chunk files instead."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


_assemblies: dict[str, _Assembly] = {}  # by upload id (random, unique across clouds)
_assemblies_lock = threading.Lock()


def _drop_assembly(upload_id: str) -> None:
    with _assemblies_lock:
        assembly = _assemblies.pop(upload_id, None)
    if assembly is not None:
        with assembly.lock:
            assembly.drop()


def _assembly_for(ctx: Ctx, session: sqlite3.Row) -> _Assembly:
    """The session's assembly, started if new; assemblies of sessions past their expiry
    (never committed) are dropped on the way."""
    now = time.time()
    with _assemblies_lock:
        expired = [k for k, a in _assemblies.items() if a.expires < now]
        assembly = _assemblies.get(session["id"])
        if assembly is None:
            assembly = _Assembly(ctx.cloud.blobs.writer(), session["expires"])
            _assemblies[session["id"]] = assembly
    for upload_id in expired:
        _drop_assembly(upload_id)
    return assembly


def _assemble(ctx: Ctx, session: sqlite3.Row, folder: Path, offset: int) -> None:
    """Chunk ``offset`` was just placed: append every chunk that is now complete in
    order (worker thread). Never fails the chunk's request: any error drops the
    assembly."""
    try:
        assembly = _assembly_for(ctx, session)
    except Exception:
        return  # no writer (e.g. a full disk): the commit reads the chunk files
    with assembly.lock:
        writer = assembly.writer
        if writer is None:
            return
        if offset < assembly.next:  # a re-sent chunk replaced one already appended
            assembly.drop()
            return
        try:
            while writer.size <= session["size"]:
                try:
                    f = open(folder / str(assembly.next), "rb")
                except FileNotFoundError:
                    return
                with f:
                    while block := f.read(COPY_BUFFER):
                        writer.write(block)
                assembly.next += 1
        except Exception:
            assembly.drop()


def _take_assembly(upload_id: str, chunks: int) -> BlobWriter | None:
    """The session's writer if it holds exactly chunks 1..``chunks`` (the commit then
    owns it), else None (and the assembly is dropped)."""
    with _assemblies_lock:
        assembly = _assemblies.pop(upload_id, None)
    if assembly is None:
        return None
    with assembly.lock:
        writer = assembly.writer
        if writer is None or assembly.next != chunks + 1:
            assembly.drop()
            return None
        assembly.writer = None
        return writer


def _file_json(ctx: Ctx, row: sqlite3.Row) -> dict[str, Any]:
    return {"file": ctx.store.to_model(ctx.account, row).to_json()}


@contextlib.contextmanager
def _not_synced(ctx: Ctx) -> Iterator[None]:
    """Transactions inside commit without waiting for the disk (``synchronous=NORMAL``:
    in WAL mode, a process crash loses nothing; a power loss may lose them until the next
    synced commit, which makes them durable too). For an unchunked session's row: losing
    it only makes its POST a 404 (the client opens another; nothing was acknowledged as
    stored), and it saves one of the two disk syncs per small upload. Chunked sessions
    stay synced: their acknowledged chunks depend on the row. Also for an unchunked
    upload's new version, which ``Store.wal_sync`` then makes durable before the answer."""
    with ctx.store.lock:  # no other transaction runs meanwhile (it must stay synced)
        ctx.store.db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            ctx.store.db.execute("PRAGMA synchronous=FULL")


@handler("upload_intent")
def upload_intent(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """Open an upload session after checking target and limits (see module docstring).

    400: the parent is ``/``, not a folder, or the checksum is not 64 lower-case hex;
    404: the parent does not exist (or is in the trash); 409: the name is a folder;
    413: over quota, over ``max_file_size``, unchunked over ``max_unchunked``, folder full.
    """
    config = ctx.cloud.config
    account = ctx.account
    parent_path: str = args["path"]
    name: str = args["name"]
    size: int = args["size"]
    checksum: str = args["checksum"]
    chunked: bool = args["chunk"]
    if not P.split_path(parent_path):
        raise BadRequestError("files cannot be uploaded into '/' itself; use a virtual folder")
    if not HEX64.match(checksum):
        raise BadRequestError("parameter 'checksum' must be the SHA-256 of the file as 64 "
                              "lower-case hex digits")
    if size > config.max_file_size:
        raise QuotaExceededError(f"a file is at most {config.max_file_size} bytes",
                                 error="file_too_large")
    if not chunked and size > config.max_unchunked:
        raise QuotaExceededError(
            f"an unchunked upload is at most {config.max_unchunked} bytes; "
            "upload with chunk=true", error="file_too_large",
        )
    try:
        parent = ctx.store.resolve_folder(account, parent_path)
    except GoneError:
        raise NotFoundError(f"the folder {parent_path} is in the trash") from None
    content.check_can_put(ctx.store, config, account, parent["id"], name, size)

    content.remove_expired_uploads(ctx.store, config)
    upload_id = new_id(16)
    now = time.time()
    with contextlib.ExitStack() as stack:
        if not chunked:
            stack.enter_context(_not_synced(ctx))
        with ctx.store.tx() as db:
            db.execute(
                "INSERT INTO uploads (id, account_id, parent_id, name, size, checksum, chunked,"
                " created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (upload_id, account.id, parent["id"], name, size, checksum, int(chunked), now,
                 now + config.upload_ttl),
            )
    if chunked:
        folder = content.upload_dir(config, upload_id)
        folder.mkdir(parents=True, exist_ok=True)
        fsync_dir(folder.parent)  # the chunks' folder survives a power loss too
    base = f"{ctx.api_url}/upload/{upload_id}?chunk={'true' if chunked else 'false'}"
    intent = UploadIntent(
        upload_url=base, commit_url=f"{ctx.api_url}/commit/{upload_id}" if chunked else None
    )
    return {"uploadurls": intent.to_json()}


async def _receive(request: Request, write: Callable[[bytes], Any], limit: int,
                   too_large: Callable[[], CloudError], in_thread: bool = True) -> int:
    """Stream the request body into ``write`` (called in a worker thread with batches of
    about ``BATCH`` bytes, in order; on the event loop when not ``in_thread``: only for a
    ``write`` that does no I/O); raise ``too_large()`` as soon as more than ``limit``
    bytes arrive (or are announced by Content-Length). Returns the body's length.

    One write is in flight while the next batch is received, so the socket is not idle
    during disk work; at most two batches are held in memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    batch = bytearray()
    total = 0
    pending: asyncio.Future[Any] | None = None

    async def flush(data: bytes) -> asyncio.Future[Any]:
        if pending is not None:
            await pending  # keep writes in order, one at a time
        return asyncio.ensure_future(to_thread.run_sync(write, data))

    try:
        async for piece in request.stream():
            total += len(piece)
            if total > limit:
                raise too_large()
            if not in_thread:
                write(piece)
                continue
            batch += piece
            if len(batch) >= BATCH:
                data, batch = bytes(batch), bytearray()
                pending = await flush(data)
        if batch:
            pending = await flush(bytes(batch))
        if pending is not None:
            await pending
            pending = None
    except ClientDisconnect:
        raise BadRequestError("the client disconnected before the body was complete") from None
    finally:
        if pending is not None:  # an error: let the write finish before the caller cleans up
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
    return total


def _check_checksum_param(session: sqlite3.Row, given: str) -> None:
    if given != session["checksum"]:
        raise BadRequestError("parameter 'checksum' differs from the one given at intent",
                              error="checksum_mismatch")


@handler("upload")
async def upload(ctx: Ctx, args: dict[str, Any]) -> Any:
    """Receive the whole file (unchunked session) or one chunk (chunked session)."""
    upload_id: str = args["uploadid"]
    declared = ctx.request.headers.get("content-length")
    if ("chunk" in ctx.request.query_params and not args["chunk"]
            and declared is not None and declared.isdigit() and int(declared) <= BATCH):
        return await _receive_small(ctx, args)
    session = await to_thread.run_sync(_session, ctx, upload_id)
    _check_session_kind(ctx, session, args)
    if session["chunked"]:
        await _receive_chunk(ctx, session, args["offset"])
        return None
    return await _receive_whole(ctx, session)


def _check_session_kind(ctx: Ctx, session: sqlite3.Row, args: dict[str, Any]) -> None:
    _check_checksum_param(session, args["checksum"])
    # The session knows whether it is chunked; a contradicting explicit ``chunk`` means
    # the client mixed up its URLs (an absent one, dropped by a client, is fine).
    if "chunk" in ctx.request.query_params and bool(session["chunked"]) != args["chunk"]:
        raise BadRequestError(
            f"this upload session is {'chunked' if session['chunked'] else 'unchunked'}; "
            f"use the uploadurl of the intent as given"
        )


def _too_large(size: int) -> CloudError:
    return QuotaExceededError(f"the body is larger than the declared size {size}",
                              error="size_mismatch")


async def _receive_small(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """A whole small file (``chunk=false``, Content-Length at most ``BATCH``), the
    common case: the body is gathered on the event loop, then the session lookup, the
    checks, the blob and the commit are one thread hop (the same answers as
    ``_receive_whole``, a 404 for an unknown session only once the body is in)."""
    body = bytearray()
    await _receive(ctx.request, body.extend, BATCH, lambda: _too_large(BATCH),
                   in_thread=False)

    def store_small() -> dict[str, Any]:
        session = _session(ctx, args["uploadid"])
        _check_session_kind(ctx, session, args)
        if len(body) > session["size"]:
            raise _too_large(session["size"])
        writer = ctx.cloud.blobs.writer()
        try:
            writer.write(bytes(body))
            return _commit_whole(ctx, session, writer)
        finally:
            writer.abort()  # the blob, if placed, is a second link: this is the temporary one

    return await to_thread.run_sync(store_small)


def _commit_whole(ctx: Ctx, session: sqlite3.Row, writer: BlobWriter) -> dict[str, Any]:
    """Commit an unchunked session's received content as the new file version (worker
    thread; the caller aborts ``writer`` afterwards). Answered only once the blob and
    its record are durable, with the disk flushes outside the store lock: the blob is
    fsynced and linked into place first (``BlobStore.place``), then the version row and
    the session's end are one commit that does not wait for the disk, then one WAL
    flush shared with concurrent uploads (``WalSync``) makes it durable. The blob is
    durable before any flush can make its record so."""
    _verify(writer.size, writer.sha256, session)
    blobs = ctx.cloud.blobs
    checksum = blobs.place(writer)
    try:
        with _not_synced(ctx), ctx.store.tx() as db:
            blobs.ensure_placed(writer, checksum)
            row = content.put_file_version(
                ctx.store, ctx.cloud.config, ctx.account, session["parent_id"],
                session["name"], checksum, writer.size)
            db.execute("DELETE FROM uploads WHERE id=?", (session["id"],))
    except BaseException:
        with ctx.store.lock:  # e.g. the folder went away: no blob left behind
            if not ctx.store.referenced(checksum):
                blobs.delete(checksum)
        raise
    answer = _file_json(ctx, row)
    ctx.store.wal_sync.sync()
    return answer


async def _receive_whole(ctx: Ctx, session: sqlite3.Row) -> dict[str, Any]:
    """An unchunked body streamed into a blob writer (a body of at most ``BATCH`` bytes
    is gathered in memory first, so blob writing, fsync and commit are one hop); see
    ``_commit_whole``."""
    size: int = session["size"]

    if size <= BATCH:
        body = bytearray()
        await _receive(ctx.request, body.extend, size, lambda: _too_large(size),
                       in_thread=False)

        def store_small() -> dict[str, Any]:
            writer = ctx.cloud.blobs.writer()
            try:
                writer.write(bytes(body))
                return _commit_whole(ctx, session, writer)
            finally:
                writer.abort()

        return await to_thread.run_sync(store_small)

    writer = await to_thread.run_sync(ctx.cloud.blobs.writer)
    try:
        await _receive(ctx.request, writer.write, size, lambda: _too_large(size))
        return await to_thread.run_sync(_commit_whole, ctx, session, writer)
    finally:
        await to_thread.run_sync(writer.abort)


def _verify(size: int, sha256: str, session: sqlite3.Row) -> None:
    """The received content must match the intent's size and checksum (400 otherwise)."""
    if size != session["size"]:
        raise BadRequestError(
            f"received {size} bytes but the intent declared {session['size']}",
            error="size_mismatch",
        )
    if sha256 != session["checksum"]:
        raise BadRequestError(
            f"the content's SHA-256 is {sha256}, not the declared {session['checksum']}",
            error="checksum_mismatch",
        )


def _chunk_offsets(folder: Path) -> dict[int, Path]:
    """Complete chunks of a session by offset (temporary ``.part`` files excluded)."""
    out: dict[int, Path] = {}
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.name.isdigit():
            out[int(entry.name)] = entry
    return out


async def _receive_chunk(ctx: Ctx, session: sqlite3.Row, offset: int | None) -> None:
    if offset is None:
        raise BadRequestError("a chunk needs the parameter 'offset' (1-based chunk number)")
    config = ctx.cloud.config
    folder = content.upload_dir(config, session["id"])

    def others_size() -> int:
        return sum(p.stat().st_size for n, p in _chunk_offsets(folder).items() if n != offset)

    room = session["size"] - await to_thread.run_sync(others_size)
    limit = min(config.max_chunk, max(room, 0))

    def too_large() -> CloudError:
        if limit == config.max_chunk:
            return QuotaExceededError(f"a chunk is at most {config.max_chunk} bytes",
                                      error="chunk_too_large")
        return QuotaExceededError(
            f"the chunks add up to more than the declared size {session['size']}",
            error="size_mismatch",
        )

    part = folder / f"{offset}.{secrets.token_hex(6)}.part"

    def open_part() -> BinaryIO:
        if not folder.is_dir():
            raise NotFoundError(f"no upload session {session['id']!r} (finished or expired)")
        return open(part, "wb")

    file = await to_thread.run_sync(open_part)

    def write(data: bytes) -> None:
        ctx.cloud.blobs.check_space(len(data))  # a full disk: OSError(ENOSPC) -> 507
        file.write(data)

    try:
        await _receive(ctx.request, write, limit, too_large)

        def close_synced() -> None:
            file.flush()
            os.fsync(file.fileno())
            file.close()

        await to_thread.run_sync(close_synced)

        def place() -> None:
            _session(ctx, session["id"])  # still open (not committed or expired meanwhile)
            os.replace(part, folder / str(offset))
            # The 201 promises the chunk: its content and its name are on disk first.
            fsync_dir(folder)

        await to_thread.run_sync(place)
        await to_thread.run_sync(_assemble, ctx, session, folder, offset)
    finally:
        if not file.closed:
            await to_thread.run_sync(file.close)
        part.unlink(missing_ok=True)


def _concatenate(ctx: Ctx, session: sqlite3.Row, chunks: dict[int, Path]) -> BlobWriter:
    """A blob writer holding chunks 1..n read from their files (stopping once over the
    declared size)."""
    writer = ctx.cloud.blobs.writer()
    try:
        for offset in range(1, max(chunks) + 1):
            with open(chunks[offset], "rb") as f:
                while block := f.read(COPY_BUFFER):
                    writer.write(block)
            if writer.size > session["size"]:
                break
    except BaseException:
        writer.abort()
        raise
    return writer


@handler("commit")
def commit(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    """Assemble chunks 1..n of a chunked session, verify, and commit the file.

    400 naming the missing chunks when 1..n are not all there, ``size_mismatch`` or
    ``checksum_mismatch`` when the assembled file differs from the intent.
    """
    session = _session(ctx, args["uploadid"])
    if not session["chunked"]:
        raise BadRequestError("an unchunked upload is committed by its POST; nothing to commit")
    chunks = _chunk_offsets(content.upload_dir(ctx.cloud.config, session["id"]))
    if not chunks:
        raise BadRequestError("no chunk has been uploaded", error="missing_chunks")
    missing = sorted(set(range(1, max(chunks) + 1)) - set(chunks))
    if missing:
        raise BadRequestError(
            f"missing chunks: {', '.join(map(str, missing[:50]))}"
            + (" ..." if len(missing) > 50 else ""), error="missing_chunks",
        )
    writer = _take_assembly(session["id"], max(chunks)) or _concatenate(ctx, session, chunks)
    try:
        _verify(writer.size, writer.sha256, session)
        row = content.adopt_and_put(ctx.store, ctx.cloud.blobs, ctx.cloud.config, ctx.account,
                                    session["parent_id"], session["name"], writer)
    finally:
        writer.abort()
    _end_session(ctx, session["id"])
    return _file_json(ctx, row)
