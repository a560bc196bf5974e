"""The seed's methods (``cloud-python-sdk-v1.5.txt``), declared once for both clients.

Each method below maps the seed's parameters to an endpoint's wire arguments and the
endpoint's result to the seed's return value, as a flow (``flows``). The ``op``
descriptor turns it into a real method of whichever client it is read from: ``Cloud``
drives the flow synchronously and returns the result, ``AsyncCloud`` returns a coroutine.
Type checkers see both (``op.__get__`` is overloaded on the client type).

Parameter names, order and defaults are the seed's; parameters the seed does not have
come after them and are keyword-only (``progress``). Where a seed method takes
``file_or_path`` it accepts a ``CloudFile``/``CloudFolder`` or a cloud path string; where
it takes a uid, uri or contact it also accepts the object that carries it.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import os
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from vzcloud.api import errors as E
from vzcloud.api import paths as P
from vzcloud.api.endpoints import DEFAULT_SERVER, MAX_COUNT
from vzcloud.api.models import (
    Account,
    CloudFile,
    CloudFolder,
    Contact,
    FolderListing,
    FullviewResult,
    Model,
    Playlist,
    PlaylistAdd,
    PlaylistItem,
    Share,
    ShareRequest,
    SharesCursor,
    SharesResult,
    Token,
)
from vzcloud.api.protocol import ETAG_HEADER, authorize_url, content_url
from vzcloud.sdk.flows import (
    Flow,
    Refresh,
    RetryPolicy,
    Session,
    call_flow,
    token_flow,
)
from vzcloud.sdk.fullview import FullviewSink, fullview_flow
from vzcloud.sdk.transfer import (
    CHUNK_THRESHOLD,
    DEFAULT_CHUNK_SIZE,
    PARALLEL_CHUNKS,
    LocalFile,
    LocalSink,
    ProgressCallback,
    download_flow,
    open_source,
    upload_flow,
)

P_ = ParamSpec("P_")
T = TypeVar("T")


class SyncRunner:
    """A client that drives flows to completion on the calling thread."""

    def _run(self, flow: Flow[T]) -> T:
        raise NotImplementedError


class AsyncRunner:
    """A client that drives flows with ``await`` (trio or asyncio, through anyio)."""

    async def _run(self, flow: Flow[T]) -> T:
        raise NotImplementedError


class op(Generic[P_, T]):
    """Make a flow-returning function a method of both clients.

    Read from a ``SyncRunner`` it is ``(*args) -> T``; from an ``AsyncRunner``,
    ``async (*args) -> T``. The bound method has the function's name, docstring and
    signature (without ``self``) and is cached on the instance.
    """

    def __init__(self, fn: Callable[Concatenate[Any, P_], Flow[T]]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Called through the class, like any method: ``Cloud.account(cloud)``."""
        return self.__get__(obj, type(obj))(*args, **kwargs)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> op[P_, T]: ...
    @overload
    def __get__(self, obj: SyncRunner, owner: type | None = None) -> Callable[P_, T]: ...
    @overload
    def __get__(
        self, obj: AsyncRunner, owner: type | None = None
    ) -> Callable[P_, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        fn = self.fn
        bound: Callable[..., Any]
        if isinstance(obj, AsyncRunner):
            async def bound_async(*args: Any, **kwargs: Any) -> Any:
                return await obj._run(fn(obj, *args, **kwargs))
            bound = bound_async
        else:
            def bound_sync(*args: Any, **kwargs: Any) -> Any:
                return obj._run(fn(obj, *args, **kwargs))
            bound = bound_sync
        functools.update_wrapper(bound, fn)
        bound.__name__ = self.name
        sig = inspect.signature(fn)
        setattr(bound, "__signature__",  # noqa: B010 - functions have no declared slot
                sig.replace(parameters=list(sig.parameters.values())[1:]))
        obj.__dict__[self.name] = bound
        return bound


# Argument helpers --------------------------------------------------------------------------


def path_of(file_or_path: Any) -> str:
    """A cloud path from a path string or a CloudFile/CloudFolder."""
    if isinstance(file_or_path, CloudFile | CloudFolder):
        return file_or_path.path
    if isinstance(file_or_path, str):
        return file_or_path
    raise TypeError(f"expected a cloud path or a CloudFile/CloudFolder, not {type(file_or_path).__name__}")


def _attr_or_self(value: Any, attr: str) -> str:
    """``value.attr`` for a model that carries it (a Playlist's uid...), else ``value``."""
    if isinstance(value, Model):
        got = getattr(value, attr, None)
        if not got:
            raise ValueError(f"{type(value).__name__} has no {attr}")
        return str(got)
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty {attr} string, not {value!r}")
    return value


def _many(value: Any) -> list[Any]:
    if isinstance(value, str | Model | dict):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    return [value]


def _uris(uris: Any) -> list[str]:
    return [_attr_or_self(u, "uri") for u in _many(uris)]


def _paths(items: Any) -> list[str]:
    return [path_of(p) for p in _many(items)]


def _share_resource(resource: Any) -> dict[str, Any]:
    if isinstance(resource, CloudFile | CloudFolder):
        is_file = isinstance(resource, CloudFile)
        resource = ShareRequest(name=resource.name, type="file" if is_file else "folder",
                                location=resource.uri or "", size=resource.size)
    if isinstance(resource, Model):
        return resource.to_json()
    if isinstance(resource, dict):
        return resource
    raise TypeError(f"expected a ShareRequest, CloudFile or CloudFolder, not {resource!r}")


def _w3c(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    return value


def _contact_json(contact: Contact | dict[str, Any]) -> dict[str, Any]:
    return contact.to_json() if isinstance(contact, Model) else dict(contact)


def _contact_id(contact: Any) -> str:
    if isinstance(contact, dict):
        contact = contact.get("id")
    return _attr_or_self(contact, "id")


# Paging -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pager:
    """How ``iter_pages`` walks a paged method: its items, and the next call's kwargs
    (None = last page). Page-numbered methods stop at a page shorter than ``count``."""

    items: Callable[[Any], list[Any]]
    next_kwargs: Callable[[dict[str, Any], Any, list[Any]], dict[str, Any] | None]


def _listing_items(result: FolderListing) -> list[Any]:
    return [*result.folders, *result.files]


def _by_page(method: Callable[..., Any]) -> Callable[[dict[str, Any], Any, list[Any]], dict[str, Any] | None]:
    defaults = inspect.signature(method).parameters

    def next_kwargs(kwargs: dict[str, Any], result: Any, items: list[Any]) -> dict[str, Any] | None:
        count = kwargs.get("count") or defaults["count"].default
        page = kwargs.get("page") or defaults["page"].default
        if len(items) < count:
            return None
        return {**kwargs, "page": page + 1}

    return next_kwargs


def _by_cursor(kwargs: dict[str, Any], result: SharesResult, items: list[Any]) -> dict[str, Any] | None:
    cursor = result.shares_cursor.cursor if result.shares_cursor else None
    if not cursor or not items or cursor == kwargs.get("cursor"):
        return None
    return {**kwargs, "cursor": cursor}


# The seed's methods ------------------------------------------------------------------------


class SeedMethods:
    """Every method of the seed (and a few beyond it), for ``Cloud`` and ``AsyncCloud``.

    Tunables, settable per instance: ``chunk_threshold`` (files this large upload in
    chunks), ``chunk_size``, ``parallel_chunks`` (AsyncCloud's concurrent chunk uploads).
    """

    chunk_threshold: int = CHUNK_THRESHOLD
    chunk_size: int = DEFAULT_CHUNK_SIZE
    parallel_chunks: int = PARALLEL_CHUNKS

    def __init__(
        self,
        client_key: str,
        client_secret: str,
        callback_url: str,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_refreshed: Callable[[Token], Any] | None = None,
        base_url: str = DEFAULT_SERVER,
    ) -> None:
        self._session = Session(client_key, client_secret, callback_url, access_token,
                                refresh_token, base_url=base_url.rstrip("/"))
        self.on_refreshed = on_refreshed
        self._open()

    def _open(self) -> None:
        """Create the client's HTTP client and refresh lock (the driver's own kinds)."""
        raise NotImplementedError

    @classmethod
    def from_profile(cls, name: str | None = None) -> Self:
        """A client for a saved profile (``vzcloud.profiles``; default: the default
        profile) that saves rotated tokens back to it, and before each refresh adopts
        tokens another process has saved there meanwhile. Reads a file: in async code,
        call it before the event loop starts or through ``anyio.to_thread.run_sync``."""
        from vzcloud import profiles

        p = profiles.load(name)
        client = cls(p.client_id, p.client_secret, p.redirect_uri, p.access_token,
                     p.refresh_token, on_refreshed=profiles.on_refreshed(p.name),
                     base_url=p.server)

        def stored_tokens() -> Token:
            # A mount and a script may share the profile: before spending our refresh
            # token, look whether the other one has rotated it already.
            saved = profiles.load(p.name)
            return Token(access_token=saved.access_token or "",
                         refresh_token=saved.refresh_token)

        client._session.stored_tokens = stored_tokens
        return client

    @property
    def access_token(self) -> str | None:
        return self._session.access_token

    @property
    def refresh_token(self) -> str | None:
        return self._session.refresh_token

    @property
    def base_url(self) -> str:
        return self._session.base_url

    @property
    def retry(self) -> RetryPolicy:
        """How calls are retried (see ``RetryPolicy``); assign to change it."""
        return self._session.retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self._session.retry = policy

    # OAuth 2.0 ----------------------------------------------------------------------------

    def authorize_url(self) -> str:
        """The URL that starts the OAuth 2.0 flow: the user logs in and grants access,
        then the browser is sent to ``callback_url?code=...``. (No I/O: plain in both
        clients.)"""
        s = self._session
        return authorize_url(s.base_url, s.client_key, s.callback_url)

    @op
    def token(self, auth_code: str) -> Flow[Token]:
        """Exchange the ``code`` from the callback for tokens; the client uses them from
        now on. UnauthorizedError: a bad, used or expired code."""
        s = self._session
        return token_flow(s, grant_type="authorization_code", code=auth_code,
                          redirect_uri=s.callback_url)

    @op
    def refresh(self) -> Flow[Token]:
        """Spend the refresh token for new tokens (called by the SDK itself on a 401);
        ``on_refreshed`` gets them. UnauthorizedError: bad, used or expired refresh token."""
        token: Token = yield Refresh(stale=None)
        return token

    # Account ------------------------------------------------------------------------------

    @op
    def account(self) -> Flow[Account]:
        """The user's id and quota usage."""
        return call_flow(self._session, "account", {})

    # Contacts -----------------------------------------------------------------------------

    @op
    def contacts(self, page: int = 1, count: int = 200, query: str | None = None,
                 sort: str | None = None) -> Flow[list[Contact]]:
        """One page of the user's contacts. ``sort`` is ``field+asc`` or ``field+desc``."""
        return call_flow(self._session, "contacts",
                         {"page": page, "count": count, "query": query, "sort": sort})

    @op
    def create_contact(self, contact: Contact | dict[str, Any]) -> Flow[Contact]:
        """Create a contact; the result has ``id`` and ``version``."""
        return call_flow(self._session, "create_contact", {"contact": _contact_json(contact)})

    @op
    def update_contact(self, contact: Contact | dict[str, Any]) -> Flow[Contact]:
        """Replace a contact (``id`` and ``version`` set); the result's ``version`` is one
        higher. ConflictError: ``version`` is not the server's."""
        return call_flow(self._session, "update_contact",
                         {"id": _contact_id(contact), "contact": _contact_json(contact)})

    @op
    def delete_contact(self, contact: Contact | dict[str, Any] | str) -> Flow[None]:
        """Delete a contact (a Contact with ``id``, or the id)."""
        return call_flow(self._session, "delete_contact", {"id": _contact_id(contact)})

    # Favorites ----------------------------------------------------------------------------

    @op
    def favorite(self, uris: str | Any, createversion: bool = False) -> Flow[None]:
        """Mark one uri or a list of uris (or CloudFiles/CloudFolders) as favorites."""
        return call_flow(self._session, "favorite",
                         {"uri": _uris(uris), "createVersion": createversion})

    @op
    def favorites(self, virtualfolder: str = "VZMOBILE", type: str | None = None,
                  filetype: str | None = None) -> Flow[FolderListing]:
        """Favorite ``files`` and ``folders``; ``type`` file|folder, ``filetype``
        image|video|music|document|other narrow it."""
        return call_flow(self._session, "favorites",
                         {"virtualfolder": virtualfolder, "type": type, "filetype": filetype})

    @op
    def unfavorite(self, uri: str | Any, createversion: bool = False) -> Flow[None]:
        """Remove one uri or a list of uris from favorites (the seed names the parameter
        ``uri`` in the signature and ``uris`` in the text; it is ``uri`` here)."""
        return call_flow(self._session, "unfavorite",
                         {"uri": _uris(uri), "createVersion": createversion})

    # File operations ----------------------------------------------------------------------

    @op
    def copy(self, file_or_path: Any, target_path: str, safe: bool = False,
             override: str | None = None,
             conflictsolve: str | None = None) -> Flow[CloudFile | CloudFolder]:
        """Copy to ``target_path`` (the copy's full path). ConflictError: ``safe`` and the
        target exists (unless ``conflictsolve="copy"``)."""
        return self._transfer("copy", file_or_path, target_path, safe, override, conflictsolve)

    @op
    def move(self, file_or_path: Any, target_path: str, safe: bool = False,
             conflictsolve: str | None = None) -> Flow[CloudFile | CloudFolder]:
        """Move to ``target_path`` (the item's new full path)."""
        return self._transfer("move", file_or_path, target_path, safe, None, conflictsolve)

    @op
    def rename(self, file_or_path: Any, target_path: str, safe: bool = False,
               conflictsolve: str | None = None) -> Flow[CloudFile | CloudFolder]:
        """Rename within its folder: ``target_path`` is the new full path, or just the new
        name (no ``/``)."""
        src = path_of(file_or_path)
        if "/" not in target_path:
            target_path = P.join([*P.split_path(src)[:-1], target_path])
        return self._transfer("rename", src, target_path, safe, None, conflictsolve)

    def _transfer(self, endpoint: str, file_or_path: Any, target_path: str, safe: bool,
                  override: str | None, conflictsolve: str | None) -> Flow[Any]:
        return call_flow(self._session, endpoint, {
            "src": path_of(file_or_path), "target": target_path, "safe": safe,
            "override": override, "conflictsolve": conflictsolve,
        })

    @op
    def create_folder(self, path: str, override: str | None = None) -> Flow[CloudFolder]:
        """Create the folder ``path``. ``override`` (overwrite|modify): an existing folder
        is answered as it is instead of a ConflictError. The seed documents this method
        both as ``create_folder`` and ``create_folder_url``: both names work."""
        parent, name = P.parent_and_name(path)
        return call_flow(self._session, "create_folder",
                         {"path": parent, "name": name, "override": override})

    create_folder_url = op(create_folder.fn)

    @op
    def delete(self, file_or_path: Any, purge: bool = False) -> Flow[None]:
        """Send to the trash, or with ``purge`` delete for good."""
        return call_flow(self._session, "delete",
                         {"path": path_of(file_or_path), "purge": purge})

    def download_url(self, file_or_path: Any) -> str:
        """A URL of the file's content that works without headers (it carries the
        current access token, so it stops working when the token expires). No I/O:
        plain in both clients."""
        s = self._session
        if not s.access_token:
            raise E.UnauthorizedError("no access token: call token() or refresh() first")
        return content_url("download", {"path": path_of(file_or_path)}, s.base_url,
                           s.access_token)

    @op
    def file_metadata(self, path: str) -> Flow[CloudFile | CloudFolder]:
        """A file's metadata (a folder's path gives the folder's own CloudFolder)."""
        result = yield from call_flow(self._session, "metadata", {"path": path_of(path), "count": 1})
        if isinstance(result, CloudFile):
            return result
        own = CloudFolder.from_json(result.extra)
        return own

    @op
    def fullview(self, etag: str | None = None, *, sink: FullviewSink | None = None,
                 ) -> Flow[FullviewResult]:
        """Everything (no ``etag``) or what changed since ``etag``: ``files``,
        ``empty_folders``, ``deleted`` paths and the new ``etag``. Nothing changed:
        ``changed`` is False and ``etag`` the one given. OutOfSyncError: the etag is too
        old; start over without one.

        ``sink``: the answer is streamed and its items handed to ``sink.add`` in
        batches as they are parsed (memory follows a batch, not the account; see
        ``vzcloud.sdk.fullview``); the result then holds no items."""
        if sink is not None:
            return fullview_flow(self._session, {ETAG_HEADER: etag}, sink)
        return call_flow(self._session, "fullview", {ETAG_HEADER: etag})

    @op
    def metadata(self, path: str = "/") -> Flow[FolderListing]:
        """A folder's ``files`` and ``folders`` (all pages; a file's path gives a listing
        of that one file). The folder's own fields are in ``extra``."""
        path = path_of(path)
        listing = FolderListing()
        page = 1
        while True:
            result = yield from call_flow(self._session, "metadata",
                                          {"path": path, "page": page, "count": MAX_COUNT})
            if isinstance(result, CloudFile):
                return FolderListing(files=[result])
            if page == 1:
                listing.extra = result.extra
            listing.files += result.files
            listing.folders += result.folders
            if len(result.files) + len(result.folders) < MAX_COUNT:
                return listing
            page += 1

    @op
    def search(self, query: str, sort: str | None = None, virtualfolder: str = "VZMOBILE",
               page: int = 1, count: int = 20) -> Flow[FolderListing]:
        """One page of items matching a Lucene-style ``query`` (``name:foo AND
        extension:jpg``): ``files`` and ``folders``."""
        return call_flow(self._session, "search", {
            "query": query, "sort": sort, "virtualfolder": virtualfolder, "page": page,
            "count": count,
        })

    @op
    def upload(self, file_or_path: LocalFile, upload_path: str, name: str | None = None,
               chunked: bool = False, chunk_size: int | None = None, *,
               progress: ProgressCallback | None = None,
               checksum: str | None = None) -> Flow[CloudFile]:
        """Upload a local file (a path or a binary file object) into the cloud folder
        ``upload_path`` as ``name`` (default: the local name). Files of
        ``chunk_threshold`` bytes or more, or any with ``chunked``, go in chunks of
        ``chunk_size``. ``progress(done, total)`` follows the bytes sent. ``checksum``:
        the content's SHA-256 (hex) when already known, so it is not computed again (the
        server verifies the content against it)."""
        source = yield from open_source(file_or_path)
        try:
            target_name = name or source.name
            if not target_name:
                raise ValueError("upload: give a name for a file object without one")
            file: CloudFile = yield from upload_flow(
                self._session, source, path_of(upload_path), target_name, chunked=chunked,
                chunk_size=chunk_size or self.chunk_size, chunk_threshold=self.chunk_threshold,
                parallel=self.parallel_chunks, progress=progress, checksum=checksum)
            return file
        finally:
            source.close()

    # Playlists ----------------------------------------------------------------------------

    @op
    def add_playlist_items(self, playlist_uid: str | Playlist,
                           playlist_items: Sequence[Any]) -> Flow[list[PlaylistAdd]]:
        """Append items (paths or CloudFiles) to a playlist."""
        return call_flow(self._session, "add_playlist_items", {
            "uid": _attr_or_self(playlist_uid, "uid"), "add": _paths(playlist_items)})

    @op
    def create_playlist(self, name: str, type: str, paths: Sequence[Any]) -> Flow[Playlist]:
        """A new playlist of ``type`` image|music|video|image-video with ``paths``."""
        return call_flow(self._session, "create_playlist",
                         {"name": name, "type": type, "paths": _paths(paths)})

    @op
    def delete_playlist(self, playlist_uid: str | Playlist) -> Flow[None]:
        return call_flow(self._session, "delete_playlist",
                         {"uid": _attr_or_self(playlist_uid, "uid")})

    @op
    def playlist(self, playlist_uid: str | Playlist) -> Flow[Playlist]:
        """One playlist's definition."""
        return call_flow(self._session, "playlist", {"uid": _attr_or_self(playlist_uid, "uid")})

    @op
    def playlist_items(self, playlist_uid: str | Playlist, page: int = 1, count: int = 20,
                       sort: str | None = None) -> Flow[list[PlaylistItem]]:
        """One page of a playlist's items."""
        return call_flow(self._session, "playlist_items", {
            "uid": _attr_or_self(playlist_uid, "uid"), "page": page, "count": count,
            "sort": sort})

    @op
    def playlists(self, type: str | None = None, page: int = 1, count: int = 20,
                  sort: str | None = None) -> Flow[list[Playlist]]:
        """One page of the user's playlists (of ``type`` when given)."""
        return call_flow(self._session, "playlists",
                         {"type": type, "page": page, "count": count, "sort": sort})

    @op
    def remove_playlist_item(self, playlist_uid: str | Playlist,
                             itemuid: str | PlaylistItem) -> Flow[None]:
        return call_flow(self._session, "remove_playlist_item", {
            "uid": _attr_or_self(playlist_uid, "uid"),
            "itemuid": _attr_or_self(itemuid, "itemuid")})

    @op
    def update_playlist(self, playlist_uid: str | Playlist, name: str,
                        type: str) -> Flow[Playlist]:
        """Rename or retype a playlist (its items stay)."""
        return call_flow(self._session, "update_playlist", {
            "uid": _attr_or_self(playlist_uid, "uid"), "name": name, "type": type})

    @op
    def update_playlist_definition(self, playlist_uid: str | Playlist, name: str, type: str,
                                   paths: Sequence[Any]) -> Flow[Playlist]:
        """Replace a playlist's name, type and items."""
        uid = _attr_or_self(playlist_uid, "uid")
        result = yield from call_flow(self._session, "update_playlist_definition", {
            "uid": uid, "name": name, "type": type, "paths": _paths(paths)})
        if result is None:  # a server that answers 200 without a body
            result = yield from call_flow(self._session, "playlist", {"uid": uid})
        playlist: Playlist = result
        return playlist

    # Shares -------------------------------------------------------------------------------

    @op
    def share(self, resources: Any, name: str | None = None,
              expires_seconds: int = 86400) -> Flow[Share]:
        """Share a ShareRequest, CloudFile or CloudFolder, or a list of them.
        ``expires_seconds=0``: the share never expires."""
        return call_flow(self._session, "share", {
            "name": name, "expiresIn": expires_seconds,
            "resources": [_share_resource(r) for r in _many(resources)]})

    @op
    def shares(self, count: int = 20, cursor: str | SharesCursor | None = None,
               filter: str | None = None, since: str | dt.datetime | None = None,
               until: str | dt.datetime | None = None) -> Flow[SharesResult]:
        """One page of shares (``shares``) and the ``shares_cursor`` of the next page
        (its ``cursor`` is None on the last page)."""
        if isinstance(cursor, SharesCursor):
            cursor = cursor.cursor
        return call_flow(self._session, "shares", {
            "count": count, "cursor": cursor, "filter": filter, "since": _w3c(since),
            "until": _w3c(until)})

    @op
    def unshare(self, uid: str | Share) -> Flow[None]:
        return call_flow(self._session, "unshare", {"uid": _attr_or_self(uid, "uid")})

    # Tags ---------------------------------------------------------------------------------

    @op
    def tag(self, uri: str | Any, tags: str | Sequence[str],
            createversion: bool = False) -> Flow[None]:
        """Set an item's tags: a comma-separated string or a list."""
        text = tags if isinstance(tags, str) else ",".join(tags)
        return call_flow(self._session, "tag", {
            "uri": _attr_or_self(uri, "uri"), "Tags": text, "createVersion": createversion})

    @op
    def tags(self, path: str | Any) -> Flow[list[str]]:
        """The tags of the item at ``path``, as a list."""
        return call_flow(self._session, "tags", {"path": path_of(path)})

    @op
    def untag(self, uri: str | Any, createversion: bool = False) -> Flow[None]:
        """Remove every tag of an item."""
        return call_flow(self._session, "untag",
                         {"uri": _attr_or_self(uri, "uri"), "createVersion": createversion})

    # Trash --------------------------------------------------------------------------------

    @op
    def empty_trash(self, virtualfolder: str = "VZMOBILE") -> Flow[None]:
        return call_flow(self._session, "empty_trash", {"virtualfolder": virtualfolder})

    @op
    def restore(self, file_or_path: Any) -> Flow[None]:
        """Put trashed items (one or a list) back at their old paths."""
        return call_flow(self._session, "restore", {"path": _paths(file_or_path)})

    @op
    def trash(self, virtualfolder: str = "VZMOBILE", sort: str | None = None, page: int = 1,
              count: int = 20, deep: bool = False,
              filter: str | None = None) -> Flow[FolderListing]:
        """One page of the trash: ``files`` and ``folders``."""
        return call_flow(self._session, "trash", {
            "virtualfolder": virtualfolder, "sort": sort, "page": page, "count": count,
            "deep": deep, "filter": filter})

    # Virtual folders ----------------------------------------------------------------------

    @op
    def create_virtualfolder(self, name: str) -> Flow[CloudFolder]:
        return call_flow(self._session, "create_virtualfolder", {"name": name})

    @op
    def delete_vitualfolder(self, name: str, force: bool = False) -> Flow[None]:
        """Delete a virtual folder (``force``: even if not empty). The seed's spelling;
        ``delete_virtualfolder`` is the same method."""
        return call_flow(self._session, "delete_virtualfolder", {"name": name, "force": force})

    delete_virtualfolder = op(delete_vitualfolder.fn)

    @op
    def rename_virtualfolder(self, old_name: str, new_name: str) -> Flow[CloudFolder]:
        return call_flow(self._session, "rename_virtualfolder",
                         {"src": old_name, "target": new_name})

    # Beyond the seed ----------------------------------------------------------------------

    @op
    def download(self, file_or_path: Any, dest: str | os.PathLike[str] | IO[bytes], *,
                 progress: ProgressCallback | None = None,
                 resume: bool = True) -> Flow[CloudFile]:
        """Stream a cloud file to a local path or binary file object; returns its
        metadata. A partial file at a path ``dest`` is resumed with ``Range``
        (``resume=False`` starts over), the result is checked against the cloud's
        SHA-256, and ``progress(done, total)`` follows the bytes received."""
        return download_flow(self._session, path_of(file_or_path), LocalSink(dest, resume),
                             progress=progress)

    @op
    def fetch_range(self, file_or_path: Any, offset: int = 0,
                    length: int | None = None) -> Flow[tuple[bytes, str | None]]:
        """Up to ``length`` bytes of a cloud file from ``offset`` (to its end if None), in
        memory, and the checksum of the content they come from (the response's ETag;
        None if the server sent none), so a caller caching blocks can tell that the file
        changed between two reads. For small reads (a block cache), not whole files."""
        if offset < 0 or (length is not None and length <= 0):
            raise ValueError("offset must be >= 0 and length > 0")
        end = "" if length is None else str(offset + length - 1)
        resp = yield from call_flow(self._session, "download", {
            "path": path_of(file_or_path), "Range": f"bytes={offset}-{end}"})
        etag = resp.header("ETag")
        checksum = etag.removeprefix("W/").strip('"') if etag else None
        data: bytes = resp.content
        return data, checksum


PAGERS: dict[str, Pager] = {
    "contacts": Pager(lambda r: list(r), _by_page(SeedMethods.contacts.fn)),
    "playlists": Pager(lambda r: list(r), _by_page(SeedMethods.playlists.fn)),
    "playlist_items": Pager(lambda r: list(r), _by_page(SeedMethods.playlist_items.fn)),
    "search": Pager(_listing_items, _by_page(SeedMethods.search.fn)),
    "trash": Pager(_listing_items, _by_page(SeedMethods.trash.fn)),
    "shares": Pager(lambda r: list(r.shares), _by_cursor),
}


def pager(method_name: str) -> Pager:
    try:
        return PAGERS[method_name]
    except KeyError:
        raise ValueError(
            f"{method_name!r} is not a paged method; paged: {', '.join(sorted(PAGERS))}"
        ) from None
