"""Small-file prefetch: when a program reads the files of a directory one after another
(``cat *``, ``xargs cat``, a file manager making thumbnails), fetch the content of the
next small files into the block cache ahead of it, with several GETs in flight at once.

When it starts: on the second read-only open of a small file in one directory, or on the
first one after that directory was listed from its start (a shell glob lists, then
opens). A listing alone fetches nothing (``ls -l`` and ``find`` read no content).

What it fetches: the directory's next files in directory order (increasing inode number,
the order ``readdir`` lists them in) after the one just opened, if they are small (one
cache block, at most ``SMALL_FILE``), clean (no local content) and not cached yet. Each
is one GET of block 0 under the same (checksum, index) key the read path uses; the block
is claimed in the core's in-flight table first, so a reader that opens a file being
prefetched waits for that GET instead of sending its own. Fetched blocks are readable
from memory at once and put on disk in batches (one thread hop and one cache transaction
for many tiny files).

Bounds: at most ``PARALLEL`` GETs in flight for the whole mount; per directory, at most
``AHEAD_FILES`` files and ``AHEAD_BYTES`` bytes fetched that the reader has not opened yet
(never more than an eighth of the cache, so prefetching cannot evict what it fetched
before it is read); at most ``MAX_RUNS`` directories at once. A full run waits until the
reader has opened ``REFILL_FILES`` of its files (or a quarter of its bytes), then
starts that many GETs at once: one wake-up of the run per several files, not per file.
A run ends at the end of the directory or when its reader has not come nearer for
``IDLE`` seconds.

Everything runs as tasks in the mount's nursery (``core.nursery``): unmounting cancels
them. Prefetch is best effort: a failure (the cloud down, a file changed or gone) is
logged at debug level and the reader simply fetches the file itself. Content cannot be
stale: a block is stored under the checksum the cloud's ETag confirmed (``_download``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

import trio

from vzcloud.fs.metadata import Inode

if TYPE_CHECKING:
    from vzcloud.fs.core import FilesystemCore

log = logging.getLogger("vzcloud.fs.prefetch")

SMALL_FILE = 1 << 20  # bytes; only files that fit in one cache block
PARALLEL = 8  # prefetch GETs in flight, for the whole mount
AHEAD_FILES = 32  # fetched but not yet opened, per directory
REFILL_FILES = 8  # a full run starts fetching again once this many were opened
AHEAD_BYTES = 16 << 20
MAX_RUNS = 4  # directories prefetched at once
IDLE = 10.0  # seconds without the reader coming nearer before a run ends
STORE_BATCH = 32  # prefetched blocks put on disk in one transaction, at most
STORE_BATCH_BYTES = 4 << 20  # and at most these bytes (more than one block only if smaller)
PAGE = 64  # directory entries read from the metadata store at a time
REMEMBERED = 64  # directories whose last open (or listing) is remembered


class _Run:
    """The prefetch of one directory: ``cursor`` is the inode number after which the next
    candidates are listed, ``reader`` the highest one the reader opened, ``ahead`` the
    files fetched (or being fetched) beyond it, in order, with their sizes."""

    def __init__(self, parent: int, reader: int) -> None:
        self.parent = parent
        self.cursor = reader
        self.reader = reader
        self.ahead: OrderedDict[int, int] = OrderedDict()
        self.ahead_bytes = 0
        self.last_move = trio.current_time()  # when the reader last opened a further file
        self.moved = trio.Event()  # set when the reader moves on (see ``refill_below``)
        # While the feeder waits for room, ``moved`` is set only once the reader has
        # consumed this far (files, bytes ahead): it then starts several GETs at once
        # instead of waking for every file the reader opens.
        self.refill_below: tuple[int, int] = (AHEAD_FILES + 1, 1 << 62)

    def reader_at(self, ino: int) -> None:
        """The reader opened ``ino``: everything fetched up to it is consumed."""
        if ino <= self.reader:
            return
        self.reader = ino
        self.last_move = trio.current_time()
        while self.ahead:
            first = next(iter(self.ahead))
            if first > ino:
                break
            self.ahead_bytes -= self.ahead.pop(first)
        files, size = self.refill_below
        if len(self.ahead) < files and self.ahead_bytes < size:
            self.moved.set()
            self.moved = trio.Event()


class SmallFilePrefetcher:
    def __init__(self, core: FilesystemCore) -> None:
        self.core = core
        self._slots = trio.Semaphore(PARALLEL)
        self._runs: dict[int, _Run] = {}
        # Per directory: the last small file opened in it (0: listed from its start).
        self._recent: OrderedDict[int, int] = OrderedDict()
        # Per directory: the inode up to which it was found cached (no run before it).
        self._warm_until: dict[int, int] = {}
        self._ahead_bytes: int | None = None  # AHEAD_BYTES capped by the cache size
        # Fetched blocks (in memory: staged) waiting to be put on disk by ``_flush``.
        self._unstored: list[tuple[str, int, bytes]] = []
        self._flushing = False

    # Hooks (called by the core on the trio thread; they never await or raise) ---------

    def directory_listed(self, parent: int) -> None:
        """``parent`` is being listed from its start."""
        self._note(parent, 0)

    def file_opened(self, inode: Inode) -> None:
        """``inode`` was opened for reading."""
        parent = inode.parent
        if parent is None or not self._small(inode):
            return
        run = self._runs.get(parent)
        if run is not None:
            run.reader_at(inode.ino)
            return
        if parent in self._recent and self.core.nursery is not None \
                and len(self._runs) < MAX_RUNS \
                and inode.ino >= self._warm_until.get(parent, 0):
            self._warm_until.pop(parent, None)
            run = self._runs[parent] = _Run(parent, inode.ino)
            self.core.nursery.start_soon(self._run, run)
        self._note(parent, inode.ino)

    # The work ----------------------------------------------------------------------------

    def _note(self, parent: int, ino: int) -> None:
        self._recent[parent] = ino
        self._recent.move_to_end(parent)
        while len(self._recent) > REMEMBERED:
            gone, _ = self._recent.popitem(last=False)
            self._warm_until.pop(gone, None)

    def _small(self, inode: Inode) -> bool:
        return (not inode.is_dir and bool(inode.checksum) and not inode.dirty
                and 0 < inode.size <= min(SMALL_FILE, self.core.blocks.block_size))

    def _candidates(self, page: list[Inode]) -> list[Inode]:
        """The files of ``page`` worth fetching: small, clean, neither cached nor being
        fetched, and not being staged."""
        blocks = self.core.blocks
        return [i for i in page
                if self._small(i) and i.checksum and not self.core.staging.exists(i.ino)
                and (i.checksum, 0) not in self.core._inflight
                and blocks.get_hot(i.checksum, 0) is None]

    def _cached(self, inodes: list[Inode]) -> set[int]:
        """In a worker thread: which of ``inodes`` have their block on disk."""
        return {i.ino for i in inodes if self.core.blocks.contains(i.checksum or "", 0)}

    async def _run(self, run: _Run) -> None:
        try:
            async with trio.open_nursery() as gets:
                await self._feed(run, gets)
        except Exception as exc:  # best effort: never let anything reach the nursery
            log.debug("prefetch of directory %d stopped: %r", run.parent, exc)
        finally:
            if self._runs.get(run.parent) is run:
                del self._runs[run.parent]

    async def _feed(self, run: _Run, gets: trio.Nursery) -> None:
        """List the directory page by page and start a GET for each candidate, while the
        reader is near enough. Returns at the end of the directory, when the reader
        stopped, or when two pages in a row had nothing to fetch (the directory is cached:
        ``_warm_until`` then keeps the run from restarting until the reader gets there)."""
        if self._ahead_bytes is None:
            limit = getattr(self.core.blocks.cache, "size_limit", AHEAD_BYTES * 8)
            self._ahead_bytes = max(self.core.blocks.block_size, min(AHEAD_BYTES, limit // 8))
        byte_limit = self._ahead_bytes
        idle_pages = 0
        while True:
            page = self.core.meta.children(run.parent, max(run.cursor, run.reader), PAGE)
            if not page:
                return
            wanted = self._candidates(page)
            cached = await trio.to_thread.run_sync(self._cached, wanted)
            wanted_inos = {i.ino for i in wanted} - cached
            idle_pages = 0 if wanted_inos else idle_pages + 1
            if idle_pages >= 2:
                self._warm_until[run.parent] = page[-1].ino
                return
            for inode in page:
                if len(run.ahead) >= AHEAD_FILES or run.ahead_bytes >= byte_limit:
                    run.refill_below = (AHEAD_FILES - REFILL_FILES, byte_limit - byte_limit // 4)
                    while len(run.ahead) >= AHEAD_FILES or run.ahead_bytes >= byte_limit:
                        with trio.move_on_at(run.last_move + IDLE):
                            await run.moved.wait()
                        if trio.current_time() >= run.last_move + IDLE:
                            return  # the reader stopped
                    run.refill_below = (AHEAD_FILES + 1, 1 << 62)
                run.cursor = inode.ino
                if inode.ino <= run.reader or inode.ino not in wanted_inos:
                    continue
                if inode.checksum and self.core._claim(inode.checksum, [0]):
                    run.ahead[inode.ino] = inode.size
                    run.ahead_bytes += inode.size
                    gets.start_soon(self._get, inode, inode.checksum)

    async def _get(self, inode: Inode, checksum: str) -> None:
        """Block 0 of ``inode`` into memory (staged: readable at once), then queued for the
        disk (``_flush``). The claim is released as soon as the block is in memory (or
        the GET failed), waking a reader waiting for it."""
        try:
            async with self._slots:
                fetched = await self.core._download(inode, 0, 0)
        except Exception as exc:
            log.debug("prefetch of inode %d failed: %r", inode.ino, exc)
            return
        finally:
            self.core._unclaim(checksum, [0])
        self._unstored.extend((checksum, i, block) for i, block in fetched.items())
        if not self._flushing and self.core.nursery is not None:
            self._flushing = True
            self.core.nursery.start_soon(self._flush)

    async def _flush(self) -> None:
        """Put the queued blocks on disk, up to ``STORE_BATCH`` (``STORE_BATCH_BYTES``) at
        a time, each batch with one worker-thread call and one cache transaction (one per
        file cost more CPU than its GET). Runs in the mount's nursery, so a run ending does not drop its blocks;
        the blocks stay readable from memory until they are on disk."""
        try:
            while self._unstored:
                count, size = 0, 0
                for _, _, block in self._unstored:
                    if count >= STORE_BATCH or (count and size + len(block) > STORE_BATCH_BYTES):
                        break
                    count, size = count + 1, size + len(block)
                batch = self._unstored[:count]
                del self._unstored[:count]
                await trio.to_thread.run_sync(self.core.blocks.put_many, batch)
        except Exception as exc:  # best effort: a block not stored is fetched again
            log.warning("could not cache prefetched blocks: %r", exc)
        finally:
            self._flushing = False
