"""fullview at scale: the SDK's streamed parser (``sdk.fullview``), deltas whose cost
follows the changes (``tree.Snapshot.of_items``), and the mount's staged apply and bulk
first load (``MetadataStore.bulk_load``), all against the real embedded cloud."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from vzcloud import AsyncCloud, Cloud
from vzcloud.api.errors import CloudError
from vzcloud.api.models import CloudFile, CloudFolder
from vzcloud.api.protocol import HttpResponse, parse_response
from vzcloud.fs.metadata import STAGED_FILE, STAGED_FOLDER, MetadataStore
from vzcloud.fs.remote import CloudRemote
from vzcloud.fs.sync import Syncer
from vzcloud.sdk.fullview import FullviewParser
from vzcloud.server.tree import Snapshot

from .conftest import Cloud as CloudFixture
from .conftest import User
from .helpers import upload
from .sdk_fixtures import make_client
from .tree_helpers import fop, mkdir

pytestmark = pytest.mark.timeout(120)

ETAG = "X-Header-ETag"


class Collect:
    """A FullviewSink keeping everything (what a test compares)."""

    def __init__(self) -> None:
        self.files: list[CloudFile] = []
        self.folders: list[CloudFolder] = []
        self.deleted: list[str] = []
        self.batches = 0

    def add(self, files: list[CloudFile], folders: list[CloudFolder],
            deleted: list[str]) -> None:
        self.files += files
        self.folders += folders
        self.deleted += deleted
        self.batches += 1

    def restart(self) -> None:
        self.__init__()  # type: ignore[misc]


def _parse_in_pieces(body: bytes, size: int) -> FullviewParser:
    parser = FullviewParser()
    for i in range(0, len(body), size):
        parser.feed(body[i:i + size])
    parser.close()
    return parser


FILE = {"name": "é€.txt", "parentPath": "/VZMOBILE/ü", "size": 12345, "checksum": "ab" * 32,
        "version": 3, "versionCreated": "2020-01-02T03:04:05.678Z", "favorite": True,
        "tags": "x,y", "uri": "dv-file://u:VZMOBILE/ü/é€.txt",
        "systemAttributes": {"mimeType": "text/plain", "nested": [1, {"a": [2.5e3]}]}}
FOLDER = {"name": "empty", "parentPath": "/VZWEB", "count": 0, "version": 1}


@pytest.mark.parametrize("piece", [1, 2, 7, 64, 1 << 20])
def test_parser_matches_the_whole_document_parser_in_any_pieces(piece: int) -> None:
    # Keys in another order than the server's, unknown keys with nested values, numbers
    # and multi-byte characters split across pieces, whitespace everywhere.
    folder, file = json.dumps(FOLDER), json.dumps(FILE, ensure_ascii=False)
    two = json.dumps({**FILE, "name": "two"})
    doc = ('{ "other": {"file": [1, 2]}, "data" : {"deleted": {"path": ["/a", "/b/c"],'
           f' "x": null}}, "folder": [{folder}], "unknown": [[{{"file": 1}}], -1.5e-3,'
           f' true], "file": [ {file} , {two} ] }} , "tail": 123456 }}\n')
    body = doc.encode()
    parser = _parse_in_pieces(body, piece)
    whole = parse_response("fullview", HttpResponse(200, {ETAG.lower(): "e-1"}, body))
    assert parser.files == whole.files and len(parser.files) == 2
    assert parser.folders == whole.empty_folders and len(parser.folders) == 1
    assert parser.deleted == whole.deleted == ["/a", "/b/c"]
    assert parser.files[0].path == "/VZMOBILE/ü/é€.txt" and parser.files[0].size == 12345


def test_parser_lone_items_and_no_data_wrapper() -> None:
    body = json.dumps({"file": FILE, "folder": FOLDER, "deleted": {"path": "/gone"}}).encode()
    parser = _parse_in_pieces(body, 5)
    assert [f.name for f in parser.files] == ["é€.txt"]
    assert [f.name for f in parser.folders] == ["empty"]
    assert parser.deleted == ["/gone"]
    empty = _parse_in_pieces(b'{"data": {"file": [], "folder": [], "deleted": {"path": []}}}', 3)
    assert empty.take() == ([], [], [])


@pytest.mark.parametrize("body", [
    b'{"data": {"file": [{"name": "a"}',  # cut off
    b'{"data": {"file": [{"name": "a"}]}} trailing',
    b'["not", "an", "object"]',
    b'{"data": {"file": [1]}}',  # an item that is not an object
    b'{"data" {"file": []}}',
    b'\xff\xfe',
    b"",
])
def test_parser_rejects_what_is_not_a_fullview(body: bytes) -> None:
    with pytest.raises(CloudError) as caught:
        _parse_in_pieces(body, 4)
    assert caught.value.error == "bad_response"


def test_streamed_fullview_equals_the_plain_one(cloud: CloudFixture, user: User) -> None:
    mkdir(user, "/VZMOBILE/docs")
    mkdir(user, "/VZMOBILE/empty")
    for i in range(30):
        upload(user, f"/VZMOBILE/docs/f{i:02d}.txt", f"file {i}".encode())
    with make_client(cloud, user, Cloud) as sdk:
        plain = sdk.fullview()
        sink = Collect()
        streamed = sdk.fullview(sink=sink)
        assert streamed.etag == plain.etag and streamed.changed
        assert streamed.files == [] and streamed.empty_folders == []
        assert sink.files == plain.files and len(sink.files) == 30
        assert sink.folders == plain.empty_folders and sink.deleted == []
        # A delta, then nothing changed (412: the sink hears nothing).
        assert fop(user, "move", "/VZMOBILE/docs/f00.txt", "/VZMOBILE/empty/f00.txt").status_code == 200
        upload(user, "/VZMOBILE/docs/f01.txt", b"changed")
        delta = Collect()
        result = sdk.fullview(plain.etag, sink=delta)
        assert sorted(f.path for f in delta.files) == ["/VZMOBILE/docs/f01.txt",
                                                       "/VZMOBILE/empty/f00.txt"]
        assert delta.deleted == ["/VZMOBILE/docs/f00.txt"]
        same = Collect()
        again = sdk.fullview(result.etag, sink=same)
        assert not again.changed and again.etag == result.etag and same.batches == 0


@pytest.mark.trio
async def test_async_streamed_fullview_in_many_batches(cloud: CloudFixture, user: User) -> None:
    mkdir(user, "/VZMOBILE/many")
    _bulk_files(cloud, user, "/VZMOBILE/many", 3000)
    async with make_client(cloud, user, AsyncCloud) as sdk:
        plain = await sdk.fullview()
        sink = Collect()
        await sdk.fullview(sink=sink)
    assert sink.batches > 1  # handed over while the body streamed, not at its end
    assert sink.files == plain.files and len(sink.files) == 3000


def _bulk_files(cloud: CloudFixture, user: User, folder: str, count: int) -> list[int]:
    """``count`` files straight in the store (as ``scripts/bench-poll`` builds its
    account), each logged as the routes do; returns their ids."""
    store = cloud.server.cloud.store
    account = store.account_by_username(user.username)
    assert account is not None
    data = b"bulk"
    checksum = hashlib.sha256(data).hexdigest()
    blob = cloud.server.cloud.blobs.path(checksum)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    ids = []
    with store.tx():
        parent = int(store.resolve_folder(account, folder)["id"])
        for i in range(count):
            item = store.insert_item(account.id, parent, f"b{i:05d}.txt", is_folder=False,
                                     size=len(data), checksum=checksum, mime_type="text/plain")
            store.log_change(account.id, item_id=item)
            ids.append(item)
    return ids


def test_delta_on_a_large_account_reads_and_returns_only_the_changes(
        cloud: CloudFixture, user: User) -> None:
    mkdir(user, "/VZMOBILE/big")
    mkdir(user, "/VZMOBILE/big/sub")
    mkdir(user, "/VZMOBILE/other")
    ids = _bulk_files(cloud, user, "/VZMOBILE/big/sub", 5000)
    r = user.http.get("/fullview")
    etag = r.headers[ETAG]
    assert len(r.json()["data"]["file"]) == 5000
    upload(user, "/VZMOBILE/big/sub/b00007.txt", b"new content")  # changed
    upload(user, "/VZMOBILE/other/new.txt", b"new")  # added
    assert fop(user, "move", "/VZMOBILE/big/sub/b00009.txt",
               "/VZMOBILE/other/b00009.txt").status_code == 200  # moved
    assert user.http.delete("/fops/delete", params={
        "path": "/VZMOBILE/big/sub/b00011.txt"}).status_code in (200, 204)
    mkdir(user, "/VZMOBILE/other/empty")  # a new empty folder
    r = user.http.get("/fullview", headers={ETAG: etag})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    paths = sorted(f["parentPath"] + "/" + f["name"] for f in data["file"])
    assert paths == ["/VZMOBILE/big/sub/b00007.txt", "/VZMOBILE/other/b00009.txt",
                     "/VZMOBILE/other/new.txt"]
    changed = {f["name"]: f for f in data["file"]}
    assert changed["b00007.txt"]["size"] == len(b"new content")
    assert changed["b00009.txt"]["uri"].endswith(":VZMOBILE/other/b00009.txt")
    # Folders whose listing changed are in the delta too, with their live counts.
    folders = {f["parentPath"] + "/" + f["name"]: f for f in data["folder"]}
    assert folders["/VZMOBILE/other/empty"]["count"] == 0
    assert sorted(data["deleted"]["path"]) == ["/VZMOBILE/big/sub/b00009.txt",
                                                "/VZMOBILE/big/sub/b00011.txt"]
    # The partial snapshot behind it holds the asked rows and their ancestors only.
    store = cloud.server.cloud.store
    account = store.account_by_username(user.username)
    assert account is not None
    snap = Snapshot.of_items(store, account, [ids[3], ids[4]])
    assert len(snap.rows) == 2 + 4  # sub, big, VZMOBILE, the root
    assert snap.path(ids[3]) == "/VZMOBILE/big/sub/b00003.txt"
    assert snap.trashed_at(ids[3]) is None and snap.top(ids[3]) is not None
    sub = snap.rows[ids[3]]["parent_id"]
    counted = Snapshot.of_items(store, account, [sub])
    assert counted.live_child_count(sub) == 5000 - 2  # one moved, one deleted
    # Another account's ids are never read.
    other = store.create_account("someone", "x", 1 << 30)
    assert Snapshot.of_items(store, other, [ids[3]]).rows == {}


def _tree(meta: MetadataStore) -> dict[str, tuple[Any, ...]]:
    """Every entry by path, with what the cloud decides of it (not a folder's mtime,
    which is when the mount made it)."""
    out: dict[str, tuple[Any, ...]] = {}
    stack: list[tuple[int, str]] = [(1, "")]
    while stack:
        ino, path = stack.pop()
        for child in meta.children(ino):
            where = f"{path}/{child.name}"
            out[where] = (child.is_dir, child.size, child.checksum, child.version,
                          child.remote, child.favorite, child.tags, child.uri,
                          child.mime_type, child.content_token,
                          None if child.is_dir else child.mtime_ns)  # a folder's: now
            if child.is_dir:
                stack.append((child.ino, where))
    return out


@pytest.mark.trio
async def test_bulk_first_load_equals_the_general_apply(cloud: CloudFixture, user: User,
                                                        tmp_path: Path) -> None:
    mkdir(user, "/VZMOBILE/a")
    mkdir(user, "/VZMOBILE/a/b")
    mkdir(user, "/VZMOBILE/empty")
    mkdir(user, "/VZMOBILE/empty/inner")
    _bulk_files(cloud, user, "/VZMOBILE/a/b", 2500)
    upload(user, "/VZWEB/top.txt", b"top")
    with make_client(cloud, user, Cloud) as plain:  # marks the first load must carry
        plain.favorite(plain.file_metadata("/VZMOBILE/empty/inner").uri)
        plain.favorite(plain.file_metadata("/VZWEB/top.txt").uri)
        plain.tag(plain.file_metadata("/VZMOBILE/a/b/b00002.txt").uri, "red,blue")
    async with make_client(cloud, user, AsyncCloud) as sdk:
        remote = CloudRemote(sdk)
        bulk = MetadataStore(tmp_path / "bulk.db")
        progress: list[tuple[int, int]] = []
        syncer = Syncer(bulk, remote)
        syncer.progress = lambda done, total: progress.append((done, total))
        assert bulk.is_empty()
        await syncer.sync_once()
        assert progress[-1] == (2501, 2501)
        # The general path: the same answer applied item by item.
        general = MetadataStore(tmp_path / "general.db")
        stage = general.stage()
        await remote.fullview(None, sink=stage)
        with general.tx():
            Syncer(general, remote).apply(stage.deleted(), stage.items(STAGED_FOLDER),
                                          stage.items(STAGED_FILE), stage.count(STAGED_FILE),
                                          full=True)
        stage.close()
        bulk_tree, general_tree = _tree(bulk), _tree(general)
        assert len(bulk_tree) == 2501 + 7  # files; a, b, empty, inner, 3 virtual folders
        assert bulk_tree == general_tree
        assert bulk_tree["/VZMOBILE/empty/inner"][5] and bulk_tree["/VZWEB/top.txt"][5]
        assert bulk_tree["/VZMOBILE/a/b/b00002.txt"][6] == "red,blue"
        # A delta after the bulk load goes through the general path.
        upload(user, "/VZMOBILE/a/b/b00001.txt", b"changed")
        await syncer.sync_once()
        assert bulk.resolve(["VZMOBILE", "a", "b", "b00001.txt"]).size == 7  # type: ignore[union-attr]
        assert bulk.count() == general.count()
        bulk.close()
        general.close()


@pytest.mark.trio
async def test_staged_sync_tolerates_two_syncers_one_after_another(
        cloud: CloudFixture, user: User, tmp_path: Path) -> None:
    # The stage is a TEMP table of the store's connection: reused, emptied each time.
    upload(user, "/VZMOBILE/x.txt", b"x")
    async with make_client(cloud, user, AsyncCloud) as sdk:
        meta = MetadataStore(tmp_path / "m.db")
        syncer = Syncer(meta, CloudRemote(sdk))
        for _ in range(3):
            await syncer.sync_once()
        assert meta.resolve(["VZMOBILE", "x.txt"]) is not None
        assert meta.db.execute("SELECT COUNT(*) FROM temp.fullview_stage").fetchone()[0] == 0
        meta.close()


def test_malloc_arena_cap_leaves_a_users_setting_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from vzcloud.fs.mount import limit_malloc_arenas

    assert limit_malloc_arenas() is True  # glibc (the project's platform)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
