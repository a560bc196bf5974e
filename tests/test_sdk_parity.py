"""``Cloud`` and ``AsyncCloud`` give identical results for the same calls on the same
cloud (the flows and parsing are shared; this checks the two drivers add nothing)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from vzcloud import AsyncCloud, Cloud, Contact, NotFoundError

from .conftest import Cloud as CloudFixture
from .conftest import User
from .sdk_fixtures import make_client

V = "/VZMOBILE"

READS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("account", (), {}),
    ("metadata", (), {}),
    ("metadata", (f"{V}/docs",), {}),
    ("file_metadata", (f"{V}/docs/a.txt",), {}),
    ("fullview", (), {}),
    ("search", ("name:a",), {}),
    ("trash", (), {}),
    ("favorites", (), {}),
    ("tags", (f"{V}/docs/a.txt",), {}),
    ("playlists", (), {}),
    ("contacts", (), {"sort": "firstname+asc"}),
    ("shares", (), {}),
    ("fetch_range", (f"{V}/docs/a.txt", 1, 3), {}),
]


@pytest.mark.trio
async def test_sync_and_async_results_are_identical(cloud: CloudFixture, user: User) -> None:
    with make_client(cloud, user) as sync:
        sync.create_folder(f"{V}/docs")
        a = sync.upload(io.BytesIO(b"alpha"), f"{V}/docs", name="a.txt")
        b = sync.upload(io.BytesIO(b"beta"), f"{V}/docs", name="b.jpg")
        sync.favorite(a)
        sync.tag(a, "x,y")
        sync.delete(b)
        sync.create_contact(Contact(firstname="Ada"))
        sync.create_playlist("P", "image", [])
        sync.share(a, "s")
        expected = [getattr(sync, name)(*args, **kwargs) for name, args, kwargs in READS]
        with pytest.raises(NotFoundError) as sync_error:
            sync.metadata(f"{V}/none")
        etag = expected[4].etag
        sync_same = sync.fullview(etag)
    async with make_client(cloud, user, AsyncCloud) as asynchronous:
        got = [await getattr(asynchronous, name)(*args, **kwargs)
               for name, args, kwargs in READS]
        with pytest.raises(NotFoundError) as async_error:
            await asynchronous.metadata(f"{V}/none")
        async_same = await asynchronous.fullview(etag)
    for (name, _, _), want, have in zip(READS, expected, got, strict=True):
        assert type(have) is type(want) and have == want, name
    assert repr(async_error.value) == repr(sync_error.value)
    assert async_same == sync_same


def test_both_clients_build_the_same_urls(cloud: CloudFixture, user: User) -> None:
    with make_client(cloud, user) as sync:
        asynchronous = make_client(cloud, user, AsyncCloud)
        assert sync.authorize_url() == asynchronous.authorize_url()
        assert sync.download_url(f"{V}/x y") == asynchronous.download_url(f"{V}/x y")
        assert isinstance(sync, Cloud)
