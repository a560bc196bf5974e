"""Every seed method, called with the seed's parameter names, through both clients.

``any_sdk`` runs each test twice: with ``Cloud`` and with ``AsyncCloud`` (in a trio loop,
called through ``trio.from_thread``), against the real embedded cloud.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from vzcloud import (
    Account,
    CloudError,
    CloudFile,
    CloudFolder,
    ConflictError,
    Contact,
    NotFoundError,
    OutOfSyncError,
    Playlist,
    PlaylistItem,
    Share,
    ShareRequest,
    UnauthorizedError,
)
from vzcloud.api.errors import BadRequestError

from . import sdk_fixtures
from .conftest import Cloud as CloudFixture
from .conftest import User
from .sdk_fixtures import make_client

any_sdk = sdk_fixtures.any_sdk  # the fixture, used by name

V = "/VZMOBILE"


def put(sdk: Any, path: str, data: bytes) -> CloudFile:
    parent, _, name = path.rpartition("/")
    return sdk.upload(file_or_path=io.BytesIO(data), upload_path=parent, name=name)


# Account ----------------------------------------------------------------------------------


def test_account(any_sdk: Any, user: User) -> None:
    acct = any_sdk.account()
    assert isinstance(acct, Account)
    assert acct.id == user.user_id and acct["id"] == user.user_id
    assert acct.quota > 0 and acct.quota_used == 0


def test_account_with_a_bad_token_and_no_refresh_token(cloud: CloudFixture, user: User) -> None:
    with make_client(cloud, user, access_token="bogus", refresh_token=None) as sdk:
        with pytest.raises(UnauthorizedError):
            sdk.account()


# Folders, uploads, listings -----------------------------------------------------------------


def test_create_folder_and_its_alias(any_sdk: Any) -> None:
    folder = any_sdk.create_folder(path=f"{V}/docs")
    assert isinstance(folder, CloudFolder)
    assert folder.path == f"{V}/docs" and folder["parentPath"] == V
    with pytest.raises(ConflictError):
        any_sdk.create_folder(path=f"{V}/docs")
    again = any_sdk.create_folder_url(path=f"{V}/docs", override="modify")
    assert again.uri == folder.uri
    with pytest.raises(NotFoundError):
        any_sdk.create_folder(f"{V}/missing/sub")


def test_upload_from_path_and_file_object(any_sdk: Any, tmp_path: Path) -> None:
    local = tmp_path / "notes.txt"
    local.write_bytes(b"from a path")
    f = any_sdk.upload(file_or_path=str(local), upload_path=V)
    assert isinstance(f, CloudFile)
    assert f.path == f"{V}/notes.txt" and f.size == 11
    assert f.checksum == hashlib.sha256(b"from a path").hexdigest()
    g = any_sdk.upload(io.BytesIO(b"from memory"), V, name="mem.txt")
    assert g.name == "mem.txt" and g["size"] == 11
    with pytest.raises(NotFoundError):
        any_sdk.upload(io.BytesIO(b"x"), f"{V}/nowhere", name="x.txt")


def test_metadata_file_metadata_and_paging(any_sdk: Any) -> None:
    any_sdk.create_folder(f"{V}/many")
    any_sdk.create_folder(f"{V}/many/sub")
    for i in range(3):
        put(any_sdk, f"{V}/many/f{i}.txt", b"%d" % i)
    listing = any_sdk.metadata(path=f"{V}/many")
    assert [f.name for f in listing.files] == ["f0.txt", "f1.txt", "f2.txt"]
    assert [f.name for f in listing["folders"]] == ["sub"]
    root = any_sdk.metadata()
    assert {f.name for f in root.folders} >= {"VZMOBILE", "VZWEB", "MyComputer"}
    meta = any_sdk.file_metadata(path=f"{V}/many/f1.txt")
    assert isinstance(meta, CloudFile) and meta.size == 1
    assert any_sdk.metadata(f"{V}/many/f1.txt").files == [meta]
    with pytest.raises(NotFoundError):
        any_sdk.metadata(path=f"{V}/nope")
    with pytest.raises(NotFoundError):
        any_sdk.file_metadata(path=f"{V}/nope.txt")


def test_metadata_gathers_every_page(any_sdk: Any) -> None:
    any_sdk.create_folder(f"{V}/big")
    for i in range(105):  # more than one page of 100
        any_sdk.create_folder(f"{V}/big/d{i:03d}")
    assert len(any_sdk.metadata(f"{V}/big").folders) == 105


def test_download_url_works_without_headers(any_sdk: Any) -> None:
    f = put(any_sdk, f"{V}/a b+c%.txt", b"content")
    url = any_sdk.download_url(file_or_path=f)
    assert "access-token=" in url
    assert httpx.get(url).content == b"content"
    assert httpx.get(any_sdk.download_url(f.path)).content == b"content"


# File operations ------------------------------------------------------------------------------


def test_copy(any_sdk: Any) -> None:
    f = put(any_sdk, f"{V}/a.txt", b"aaa")
    put(any_sdk, f"{V}/b.txt", b"bbb")
    c = any_sdk.copy(file_or_path=f, target_path=f"{V}/c.txt")
    assert isinstance(c, CloudFile) and c.path == f"{V}/c.txt" and c.checksum == f.checksum
    with pytest.raises(ConflictError):
        any_sdk.copy(f.path, f"{V}/b.txt", safe=True)
    renamed = any_sdk.copy(f.path, f"{V}/b.txt", safe=True, conflictsolve="copy")
    assert renamed.path != f"{V}/b.txt" and renamed.parent_path == V
    with pytest.raises(NotFoundError):
        any_sdk.copy(f"{V}/nope.txt", f"{V}/d.txt")


def test_move_and_rename(any_sdk: Any) -> None:
    any_sdk.create_folder(f"{V}/dir")
    f = put(any_sdk, f"{V}/a.txt", b"aaa")
    moved = any_sdk.move(file_or_path=f, target_path=f"{V}/dir/a.txt")
    assert moved.path == f"{V}/dir/a.txt"
    renamed = any_sdk.rename(file_or_path=moved.path, target_path=f"{V}/dir/b.txt")
    assert renamed.path == f"{V}/dir/b.txt"
    by_name = any_sdk.rename(renamed, "c.txt")  # a bare name stays in the folder
    assert by_name.path == f"{V}/dir/c.txt"
    put(any_sdk, f"{V}/dir/d.txt", b"d")
    with pytest.raises(ConflictError):
        any_sdk.move(by_name, f"{V}/dir/d.txt", safe=True)
    with pytest.raises(ConflictError):
        any_sdk.rename(by_name, f"{V}/dir/d.txt", safe=True)
    with pytest.raises(NotFoundError):
        any_sdk.move(f"{V}/gone.txt", f"{V}/x.txt")
    with pytest.raises(NotFoundError):
        any_sdk.rename(f"{V}/gone.txt", f"{V}/x.txt")


def test_delete_trash_restore_empty_trash(any_sdk: Any) -> None:
    f = put(any_sdk, f"{V}/t.txt", b"trash me")
    put(any_sdk, f"{V}/p.txt", b"purge me")
    assert any_sdk.delete(file_or_path=f) is None
    trash = any_sdk.trash(virtualfolder="VZMOBILE")
    assert [x.name for x in trash.files] == ["t.txt"] and trash["folders"] == []
    assert any_sdk.restore(file_or_path=f.path) is None
    assert any_sdk.file_metadata(f.path).size == 8
    any_sdk.delete(f"{V}/p.txt", purge=True)
    assert any_sdk.trash().files == []
    any_sdk.delete(f)
    assert any_sdk.empty_trash(virtualfolder="VZMOBILE") is None
    assert any_sdk.trash().files == []
    with pytest.raises(NotFoundError):
        any_sdk.delete(f"{V}/t.txt")
    with pytest.raises(NotFoundError):
        any_sdk.restore(f"{V}/never.txt")
    with pytest.raises(NotFoundError):
        any_sdk.trash(virtualfolder="NoSuchFolder")
    with pytest.raises(NotFoundError):
        any_sdk.empty_trash(virtualfolder="NoSuchFolder")


def test_trash_parameters(any_sdk: Any) -> None:
    any_sdk.create_folder(f"{V}/gone")
    for name in ("b.txt", "a.txt"):
        put(any_sdk, f"{V}/{name}", b"x")
        any_sdk.delete(f"{V}/{name}")
    any_sdk.delete(f"{V}/gone")
    page = any_sdk.trash("VZMOBILE", sort="name+desc", page=1, count=1, deep=False,
                         filter="file")
    assert [f.name for f in page.files] == ["b.txt"] and page.folders == []
    folders = any_sdk.trash(filter="folder")
    assert [f.name for f in folders.folders] == ["gone"]


# Fullview -----------------------------------------------------------------------------------


def test_fullview_and_deltas(any_sdk: Any) -> None:
    f = put(any_sdk, f"{V}/full.txt", b"x")
    first = any_sdk.fullview()
    assert f.path in [x.path for x in first.files]
    assert {x.name for x in first["empty_folders"]} >= {"VZWEB", "MyComputer"}
    assert first.etag and first.changed and first.deleted == []
    same = any_sdk.fullview(etag=first.etag)
    assert same.changed is False and same.etag == first.etag and same.files == []
    any_sdk.delete(f)
    g = put(any_sdk, f"{V}/new.txt", b"y")
    delta = any_sdk.fullview(first.etag)
    assert delta.changed and delta.etag != first.etag
    assert delta.deleted == [f.path] and [x.path for x in delta.files] == [g.path]


def test_fullview_with_a_foreign_etag_is_out_of_sync(any_sdk: Any) -> None:
    with pytest.raises(OutOfSyncError):
        any_sdk.fullview(etag="00000000-1")


# Search, favorites, tags ------------------------------------------------------------------------


def test_search(any_sdk: Any) -> None:
    put(any_sdk, f"{V}/report-2017.pdf", b"x")
    put(any_sdk, f"{V}/holiday.jpg", b"y")
    found = any_sdk.search(query="name:report", sort="name+asc", virtualfolder="VZMOBILE",
                           page=1, count=20)
    assert [f.name for f in found.files] == ["report-2017.pdf"]
    assert [f.name for f in any_sdk.search("extension:jpg").files] == ["holiday.jpg"]
    with pytest.raises(NotFoundError):
        any_sdk.search("name:x", virtualfolder="NoSuchFolder")


def test_favorites(any_sdk: Any) -> None:
    f = put(any_sdk, f"{V}/fav.txt", b"x")
    folder = any_sdk.create_folder(f"{V}/favdir")
    assert any_sdk.favorite(uris=[f.uri, folder.uri], createversion=False) is None
    favs = any_sdk.favorites(virtualfolder="VZMOBILE")
    assert [x.name for x in favs.files] == ["fav.txt"]
    assert [x.name for x in favs["folders"]] == ["favdir"]
    assert [x.name for x in any_sdk.favorites(type="folder").files] == []
    assert any_sdk.unfavorite(uri=f.uri) is None
    assert any_sdk.favorites().files == []
    missing = f.uri.replace("fav.txt", "none.txt")
    with pytest.raises(NotFoundError):
        any_sdk.favorite(missing)
    with pytest.raises(NotFoundError):
        any_sdk.unfavorite(missing)


def test_tags(any_sdk: Any) -> None:
    f = put(any_sdk, f"{V}/tagged.txt", b"x")
    assert any_sdk.tag(uri=f.uri, tags="beach,sun", createversion=False) is None
    assert any_sdk.tags(path=f.path) == ["beach", "sun"]
    any_sdk.tag(f, ["a", "b"])
    assert any_sdk.tags(f) == ["a", "b"]
    assert any_sdk.untag(uri=f.uri) is None
    assert any_sdk.tags(f.path) == []
    missing = f.uri.replace("tagged.txt", "none.txt")
    with pytest.raises(NotFoundError):
        any_sdk.tag(missing, "x")
    with pytest.raises(NotFoundError):
        any_sdk.untag(missing)
    with pytest.raises(NotFoundError):
        any_sdk.tags(f"{V}/none.txt")


# Virtual folders ----------------------------------------------------------------------------


def test_virtual_folders(any_sdk: Any) -> None:
    vf = any_sdk.create_virtualfolder(name="Archive")
    assert isinstance(vf, CloudFolder) and vf.path == "/Archive" and vf.parent_path == "/"
    renamed = any_sdk.rename_virtualfolder(old_name="Archive", new_name="Old")
    assert renamed.path == "/Old"
    any_sdk.create_folder("/Old/inside")
    with pytest.raises(ConflictError):
        any_sdk.delete_vitualfolder(name="Old")
    assert any_sdk.delete_vitualfolder(name="Old", force=True) is None
    any_sdk.create_virtualfolder("Other")
    assert any_sdk.delete_virtualfolder("Other") is None
    with pytest.raises(NotFoundError):
        any_sdk.delete_vitualfolder("Old")
    with pytest.raises(NotFoundError):
        any_sdk.rename_virtualfolder("Old", "Older")
    with pytest.raises(ConflictError):
        any_sdk.create_virtualfolder("VZWEB")


# Playlists ------------------------------------------------------------------------------------


def test_playlists(any_sdk: Any) -> None:
    a = put(any_sdk, f"{V}/a.jpg", b"a")
    b = put(any_sdk, f"{V}/b.jpg", b"b")
    c = put(any_sdk, f"{V}/c.jpg", b"c")
    pl = any_sdk.create_playlist(name="Trip", type="image", paths=[a.path, b.path])
    assert isinstance(pl, Playlist) and pl.name == "Trip" and pl.type == "image"
    assert [p.uid for p in any_sdk.playlists(type="image", page=1, count=20,
                                             sort="name+asc")] == [pl.uid]
    assert any_sdk.playlist(playlist_uid=pl.uid).name == "Trip"
    items = any_sdk.playlist_items(playlist_uid=pl.uid, page=1, count=20)
    assert [i.path for i in items] == [a.path, b.path]
    assert all(isinstance(i, PlaylistItem) for i in items)
    added = any_sdk.add_playlist_items(playlist_uid=pl.uid, playlist_items=[c.path])
    assert [x.path for x in added] == [c.path] and added[0].itemuid
    assert any_sdk.remove_playlist_item(playlist_uid=pl.uid, itemuid=items[0].itemuid) is None
    assert [i.path for i in any_sdk.playlist_items(pl)] == [b.path, c.path]
    updated = any_sdk.update_playlist(playlist_uid=pl.uid, name="Trip 2", type="image")
    assert updated.name == "Trip 2"
    redefined = any_sdk.update_playlist_definition(playlist_uid=pl.uid, name="Trip 3",
                                                   type="image", paths=[c.path, a.path])
    assert redefined.name == "Trip 3"
    assert [i.path for i in any_sdk.playlist_items(pl.uid)] == [c.path, a.path]
    assert any_sdk.delete_playlist(playlist_uid=pl.uid) is None
    for call in (lambda: any_sdk.playlist(pl.uid), lambda: any_sdk.delete_playlist(pl.uid),
                 lambda: any_sdk.playlist_items(pl.uid),
                 lambda: any_sdk.update_playlist(pl.uid, "x", "image"),
                 lambda: any_sdk.update_playlist_definition(pl.uid, "x", "image", []),
                 lambda: any_sdk.add_playlist_items(pl.uid, [a.path]),
                 lambda: any_sdk.remove_playlist_item(pl.uid, "nope")):
        with pytest.raises(NotFoundError):
            call()


# Shares ---------------------------------------------------------------------------------------


def test_shares(any_sdk: Any) -> None:
    f = put(any_sdk, f"{V}/shared.txt", b"share me")
    req = ShareRequest(name=f.name, type="file", location=f.uri or "", size=f.size)
    s = any_sdk.share(resources=req, name="one", expires_seconds=0)
    assert isinstance(s, Share) and s.name == "one" and s.resources[0].name == "shared.txt"
    s2 = any_sdk.share([f], "two")
    page = any_sdk.shares(count=1, filter="outbound")
    assert len(page.shares) == 1 and page["shares_cursor"].cursor
    rest = any_sdk.shares(count=1, cursor=page.shares_cursor)
    assert {page.shares[0].uid, rest.shares[0].uid} == {s.uid, s2.uid}
    assert any_sdk.unshare(uid=s.uid) is None
    assert [x.uid for x in any_sdk.shares().shares] == [s2.uid]
    with pytest.raises(NotFoundError):
        any_sdk.unshare(s.uid)
    with pytest.raises(NotFoundError):
        any_sdk.share(ShareRequest(name="x", location=f.uri.replace("shared", "none")))


# Contacts ---------------------------------------------------------------------------------------


def test_contacts(any_sdk: Any) -> None:
    made = any_sdk.create_contact(contact=Contact(firstname="Ada", lastname="Lovelace"))
    assert isinstance(made, Contact) and made.id and made.version is not None
    any_sdk.create_contact({"firstname": "Bob", "lastname": "Byron"})
    listed = any_sdk.contacts(page=1, count=200, query=None, sort="firstname+asc")
    assert [c.firstname for c in listed] == ["Ada", "Bob"]
    made.note = "first programmer"
    updated = any_sdk.update_contact(contact=made)
    assert updated.version == made.version + 1 and updated.note == "first programmer"
    with pytest.raises(ConflictError):
        any_sdk.update_contact(made)  # made.version is stale now
    assert any_sdk.delete_contact(contact=updated) is None
    assert [c.firstname for c in any_sdk.contacts()] == ["Bob"]
    with pytest.raises(NotFoundError):
        any_sdk.delete_contact(updated)


# Paging -----------------------------------------------------------------------------------------


def test_iter_pages(any_sdk: Any) -> None:
    for i in range(5):
        any_sdk.create_contact(Contact(firstname=f"c{i}"))
    names = [c.firstname for c in any_sdk.iter_pages("contacts", count=2, sort="firstname+asc")]
    assert names == [f"c{i}" for i in range(5)]
    f = put(any_sdk, f"{V}/s.txt", b"x")
    uids = {any_sdk.share(f, f"s{i}").uid for i in range(3)}
    assert {s.uid for s in any_sdk.iter_pages("shares", count=2)} == uids
    for i in range(3):
        put(any_sdk, f"{V}/page{i}.txt", b"x")
    found = [f.name for f in any_sdk.iter_pages("search", query="name:page", count=2)]
    assert found == ["page0.txt", "page1.txt", "page2.txt"]
    with pytest.raises(ValueError):
        list(any_sdk.iter_pages("account"))


# Errors of the client side ----------------------------------------------------------------------


def test_bad_arguments(any_sdk: Any) -> None:
    with pytest.raises(BadRequestError):
        any_sdk.metadata("VZMOBILE/no-leading-slash")
    with pytest.raises(TypeError):
        any_sdk.delete(42)
    with pytest.raises(CloudError) as info:
        any_sdk.search("name:x", count=1000)  # over the server's maximum
    assert info.value.status == 400
