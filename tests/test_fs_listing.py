"""Directory listings in-process: ``MetadataStore.entries`` (the cheap rows readdir lists)
and ``FilesystemCore.readdir`` paging over them, on a real metadata store in a tmp cache
dir. A listing reads only local metadata (no cloud), so the core gets no remote here.

- ``entries`` lists what ``children`` lists, in the same order, with the same values.
- ``readdir`` pages through a directory bigger than its page cache and lists every
  entry once; a local change between two readdir calls (a new entry, a rename, a
  delete, a size change) shows in the very next call: the page kept from the previous
  call is reused only while the metadata store is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vzcloud.fs.blocks import BlockCache
from vzcloud.fs.core import LISTING_PAGE, FilesystemCore
from vzcloud.fs.metadata import ROOT_INODE, MetadataStore
from vzcloud.fs.staging import StagingArea

pytestmark = pytest.mark.timeout(60)


def _core(tmp_path: Path) -> FilesystemCore:
    meta = MetadataStore(tmp_path / "meta.db")
    blocks = BlockCache(tmp_path / "blocks", size_limit=1 << 20)
    return FilesystemCore(meta, blocks, StagingArea(tmp_path / "staging"),
                          remote=None)  # type: ignore[arg-type]  # listings never call it


def _fill(meta: MetadataStore, parent: int, count: int) -> list[int]:
    with meta.tx():
        return [meta.create(parent, f"f{i:05d}", is_dir=i % 7 == 0, size=i,
                            mtime_ns=1_000 + i, checksum="c" * 64, version=i, remote=True,
                            uri=f"/u/{i}", mime_type="text/plain").ino
                for i in range(count)]


def test_entries_list_what_children_list(tmp_path: Path) -> None:
    meta = _core(tmp_path).meta
    folder = meta.create(ROOT_INODE, "d", is_dir=True).ino
    _fill(meta, folder, 50)
    for after, limit in ((0, -1), (0, 10), (folder + 20, 5), (10**9, -1)):
        full = meta.children(folder, after, limit)
        cheap = meta.entries(folder, after, limit)
        assert [(i.ino, i.name, i.is_dir, i.size, i.mtime_ns, i.ctime_ns) for i in full] \
            == [(e.ino, e.name, bool(e.is_dir), e.size, e.mtime_ns, e.ctime_ns)
                for e in cheap]


def _list(core: FilesystemCore, ino: int, page: int, between: object = None) -> list[str]:
    names: list[str] = []
    after = 0
    calls = 0
    while True:
        got = core.readdir(ino, after, page)
        if not got:
            return names
        names += [c.name or "" for c in got]
        after = got[-1].ino
        calls += 1
        if calls == 2 and callable(between):
            between()


def test_readdir_pages_through_everything(tmp_path: Path) -> None:
    core = _core(tmp_path)
    folder = core.meta.create(ROOT_INODE, "big", is_dir=True).ino
    count = 2 * LISTING_PAGE + 100
    _fill(core.meta, folder, count)
    expected = [f"f{i:05d}" for i in range(count)]
    assert _list(core, folder, 200) == expected
    assert _list(core, folder, 200) == expected  # again, from the kept page


def test_readdir_sees_a_change_made_between_two_calls(tmp_path: Path) -> None:
    core = _core(tmp_path)
    meta = core.meta
    folder = meta.create(ROOT_INODE, "d", is_dir=True).ino
    inos = _fill(meta, folder, 600)
    assert _list(core, folder, 100)[:3] == ["f00000", "f00001", "f00002"]

    def change() -> None:  # after 200 entries were listed: changes further on
        meta.move(inos[300], folder, "renamed")
        meta.delete(inos[400])
        meta.update(inos[500], size=123_456)
        meta.create(folder, "new", is_dir=False)

    names = _list(core, folder, 100, between=change)
    assert "renamed" in names and "f00300" not in names
    assert "f00400" not in names
    assert names[-1] == "new"
    assert len(names) == 600
    sizes = {c.name: c.size for c in core.readdir(folder, inos[499], 1)}
    assert sizes == {"f00500": 123_456}
