"""The public surface of both clients matches the seed: every method, its parameter names
in order and its defaults (read from ``../shared/seed/cloud-python-sdk-v1.5.txt`` itself,
with a copy of its signatures below for machines without the shared directory)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import vzcloud
from vzcloud import AsyncCloud, Cloud
from vzcloud.api.endpoints import DEFAULT_SERVER, ENDPOINTS
from vzcloud.api.protocol import RESULT_PARSERS

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "cloud-python-sdk-v1.5.txt"

# The seed's signature lines, as printed in it ("cloud.name(args)").
SEED_SIGNATURES = """
cloud.authorize_url()
cloud.refresh()
cloud.token(auth_code)
cloud.account()
cloud.contacts([ page [, count [, query [, sort]]]])
cloud.create_contact(contact)
cloud.delete_contact(contact)
cloud.update_contact(contact)
cloud.favorite(uris [, createversion])
cloud.favorites([ virtualfolder [, type [, filetype]]])
cloud.unfavorite(uri [, createversion])
cloud.copy(file_or_path, target_path [, safe [, override [, conflictsolve ]]])
cloud.create_folder_url(path [, override ])
cloud.delete(file_or_path [, purge ])
cloud.download_url(file_or_path)
cloud.file_metadata(path)
cloud.fullview(etag)
cloud.metadata(path)
cloud.move(file_or_path, target_path [, safe [, conflictsolve ]])
cloud.rename(file_or_path, target_path [, safe [, conflictsolve ]])
cloud.search(query [, sort [, virtualfolder [, page [, count]]]])
cloud.upload(file_or_path, upload_path [, name [, chunked [, chunk_size ]]])
cloud.add_playlist_items(playlist_uid, playlist_items)
cloud.create_playlist(name, type, paths)
cloud.delete_playlist(playlist_uid)
cloud.playlist(playlist_uid)
cloud.playlist_items(playlist_uid [, page [, count [, sort ]]])
cloud.playlists( [, type [, page [, count [, sort ]]]])
cloud.remove_playlist_item(playlist_uid, itemuid)
cloud.update_playlist(playlist_uid, name, type)
cloud.update_playlist_definition(playlist_uid, name, type, paths)
cloud.share(resources [, name [, expires_seconds]])
cloud.shares([ count [, cursor [, filter [, since [, until ]]]]])
cloud.unshare(uid)
cloud.tag(uri, tags [, createversion])
cloud.tags(path)
cloud.untag(uri [, createversion])
cloud.empty_trash([virtualfolder])
cloud.restore(file_or_path)
cloud.trash([virtualfolder [, sort [, page [, count [, deep [, filter ]]]]])
cloud.create_virtualfolder(name)
cloud.delete_vitualfolder(name [, force ])
cloud.rename_virtualfolder(old_name, new_name)
"""
SEED_CONSTRUCTOR = ["client_key", "client_secret", "callback_url", "access_token",
                    "refresh_token", "on_refreshed"]
# The seed's headings name two methods differently from their signature lines; both exist.
HEADING_NAMES = {"create_folder": "create_folder_url", "delete_virtualfolder": "delete_vitualfolder"}
# Documented defaults ("Defaults to ...") of optional parameters.
SEED_DEFAULTS = {
    ("contacts", "page"): 1, ("contacts", "count"): 200,
    ("search", "virtualfolder"): "VZMOBILE", ("search", "page"): 1, ("search", "count"): 20,
    ("favorites", "virtualfolder"): "VZMOBILE",
    ("playlist_items", "page"): 1, ("playlist_items", "count"): 20,
    ("playlists", "page"): 1, ("playlists", "count"): 20,
    ("shares", "count"): 20, ("share", "expires_seconds"): 86400,
    ("copy", "safe"): False, ("move", "safe"): False, ("rename", "safe"): False,
    ("delete", "purge"): False, ("metadata", "path"): "/",
    ("empty_trash", "virtualfolder"): "VZMOBILE", ("trash", "virtualfolder"): "VZMOBILE",
    ("trash", "page"): 1, ("trash", "count"): 20, ("upload", "chunked"): False,
}
SIGNATURE = re.compile(r"cloud\.(\w+)\(([^)]*)\)")


def parse(text: str) -> dict[str, tuple[list[str], int]]:
    """method -> (parameter names in order, how many are required)."""
    out = {}
    for name, args in SIGNATURE.findall(text):
        names = re.findall(r"\w+", args)
        required = len(re.findall(r"\w+", args.split("[", 1)[0]))
        out[name] = (names, required)
    return out


def test_the_copy_above_is_the_seed() -> None:
    # CI gets shared/ beside the checkout, as every machine of the project does.
    assert SEED.exists(), f"the seed is missing at {SEED}"
    assert parse(SEED.read_text()) == parse(SEED_SIGNATURES)


SEED_METHODS = parse(SEED_SIGNATURES)


def _params(cls: type, name: str) -> list[inspect.Parameter]:
    return list(inspect.signature(getattr(cls, name)).parameters.values())[1:]


@pytest.mark.parametrize("cls", [Cloud, AsyncCloud])
@pytest.mark.parametrize("method", sorted(SEED_METHODS))
def test_every_seed_method_with_its_parameters(cls: type, method: str) -> None:
    names, required = SEED_METHODS[method]
    params = _params(cls, method)
    if method == "fullview":
        required = 0  # the seed's text: call it "without etag" for everything
    if method == "metadata":
        required = 0  # "Defaults to the root /"
    assert [p.name for p in params[:len(names)]] == names
    for i, p in enumerate(params[:len(names)]):
        assert p.kind == p.POSITIONAL_OR_KEYWORD, (method, p.name)
        assert (p.default is p.empty) == (i < required), (method, p.name)
    # Anything beyond the seed is keyword-only and optional.
    for p in params[len(names):]:
        assert p.kind == p.KEYWORD_ONLY and p.default is not p.empty, (method, p.name)
    for (m, pname), default in SEED_DEFAULTS.items():
        if m == method:
            assert inspect.signature(getattr(cls, m)).parameters[pname].default == default


@pytest.mark.parametrize("cls", [Cloud, AsyncCloud])
def test_aliases_and_async_kinds(cls: type) -> None:
    for heading, seed_name in HEADING_NAMES.items():
        assert _params(cls, heading) == _params(cls, seed_name)
    plain = {"authorize_url", "download_url"}  # no I/O: plain methods in both clients
    client = cls(*"abc")
    for method in [*SEED_METHODS, *HEADING_NAMES, "download", "fetch_range"]:
        is_async = inspect.iscoroutinefunction(getattr(client, method))
        assert is_async == (cls is AsyncCloud and method not in plain), method
    assert inspect.isasyncgenfunction(client.iter_pages) == (cls is AsyncCloud)


@pytest.mark.parametrize("cls", [Cloud, AsyncCloud])
def test_constructor(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [*SEED_CONSTRUCTOR, "base_url"]
    assert all(p.default is None for p in params[3:6])
    assert params[-1].default == DEFAULT_SERVER == "https://api.cloudapi.verizon.com"
    assert callable(cls.from_profile)


def test_package_exports_the_seed_objects_and_errors() -> None:
    for name in ("Cloud", "AsyncCloud", "CloudFile", "CloudFolder", "Account", "Token",
                 "Contact", "Playlist", "PlaylistItem", "PlaylistAdd", "Share",
                 "SharesCursor", "CloudError", "UnauthorizedError", "NotFoundError",
                 "ConflictError", "OutOfSyncError"):
        assert hasattr(vzcloud, name), name


def test_every_result_shape_of_the_table_has_a_parser() -> None:
    shapes = {e.result for e in ENDPOINTS} - {"bytes", "fullview"}
    assert shapes <= set(RESULT_PARSERS)
