"""What the filesystem needs from the cloud, as one narrow async interface.

``CloudRemote`` implements it over ``vzcloud.AsyncCloud``; the core never sees HTTP.
Every method raises ``vzcloud.api.errors.CloudError`` subclasses on failure (network
failures as ``NetworkError``), which ``fs.errno_map`` turns into errno values.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Protocol

from vzcloud.api import paths as P
from vzcloud.api.endpoints import MAX_COUNT
from vzcloud.api.errors import BadRequestError
from vzcloud.api.models import Account, CloudFile, CloudFolder, FolderListing, FullviewResult
from vzcloud.sdk.async_cloud import AsyncCloud
from vzcloud.sdk.fullview import FullviewSink


class Remote(Protocol):
    async def account(self) -> Account: ...

    async def fullview(self, etag: str | None, sink: FullviewSink | None = None,
                       ) -> FullviewResult:
        """Everything, or what changed since ``etag``; with a ``sink`` the items stream
        to it in batches instead (see ``vzcloud.sdk.fullview``)."""
        ...

    async def read_range(self, path: str, start: int, end: int) -> tuple[bytes, str | None]:
        """Bytes ``[start, end)`` of the file at ``path`` and the content's checksum
        (the response ETag), so the caller can tell if the file changed under it."""
        ...

    async def upload(self, local: Path | bytes, parent_path: str, name: str,
                     checksum: str | None = None) -> CloudFile:
        """Upload a local file, or content held in memory (small files). ``checksum``:
        its SHA-256 if the caller has it (not computed again)."""
        ...

    async def file_metadata(self, path: str) -> CloudFile: ...

    async def create_folder(self, parent_path: str, name: str, exist_ok: bool = False,
                            ) -> CloudFolder:
        """Create a folder (``exist_ok``: an existing folder is answered as it is)."""
        ...

    async def folder_has_items(self, path: str) -> bool:
        """Whether the folder at ``path`` holds anything live."""
        ...

    async def create_virtualfolder(self, name: str) -> CloudFolder: ...

    async def rename_virtualfolder(self, old: str, new: str) -> CloudFolder: ...

    async def delete_virtualfolder(self, name: str, force: bool = False) -> None: ...

    async def move(self, src: str, target: str) -> CloudFile | CloudFolder: ...

    async def delete(self, path: str) -> None: ...

    # The cloud's own features (favorites, tags, trash: ``fs.special``, ``fs.xattrs``).

    async def item_metadata(self, path: str) -> CloudFile | CloudFolder:
        """The file or folder at ``path`` itself (its uri, tags, favorite mark)."""
        ...

    async def set_favorite(self, uri: str, favorite: bool) -> None: ...

    async def set_tags(self, uri: str, tags: str | None) -> None:
        """Replace the item's tags (comma-separated); None or blank removes them."""
        ...

    async def favorites(self) -> FolderListing:
        """Every favorite file and folder of every virtual folder."""
        ...

    async def trash(self, virtualfolder: str) -> FolderListing:
        """Everything in one virtual folder's trash, contents of trashed folders included
        (all pages), at their original paths."""
        ...

    async def restore(self, path: str) -> None:
        """Put the trashed item whose original path is ``path`` back there."""
        ...


class CloudRemote:
    """``Remote`` over a ``vzcloud.AsyncCloud`` (one per mount, connection reuse)."""

    def __init__(self, cloud: AsyncCloud) -> None:
        self.cloud = cloud

    async def account(self) -> Account:
        return await self.cloud.account()

    async def fullview(self, etag: str | None, sink: FullviewSink | None = None,
                       ) -> FullviewResult:
        return await self.cloud.fullview(etag, sink=sink)

    async def read_range(self, path: str, start: int, end: int) -> tuple[bytes, str | None]:
        return await self.cloud.fetch_range(path, start, end - start)

    async def upload(self, local: Path | bytes, parent_path: str, name: str,
                     checksum: str | None = None) -> CloudFile:
        source = io.BytesIO(local) if isinstance(local, bytes) else str(local)
        return await self.cloud.upload(source, parent_path, name, checksum=checksum)

    async def file_metadata(self, path: str) -> CloudFile:
        result = await self.cloud.file_metadata(path)
        if not isinstance(result, CloudFile):
            raise BadRequestError(f"not a file: {path}")
        return result

    async def create_folder(self, parent_path: str, name: str, exist_ok: bool = False,
                            ) -> CloudFolder:
        return await self.cloud.create_folder(P.join([*P.split_path(parent_path), name]),
                                              override="modify" if exist_ok else None)

    async def folder_has_items(self, path: str) -> bool:
        listing = await self.cloud.metadata(path)
        return bool(listing.files or listing.folders)

    async def create_virtualfolder(self, name: str) -> CloudFolder:
        return await self.cloud.create_virtualfolder(name)

    async def rename_virtualfolder(self, old: str, new: str) -> CloudFolder:
        return await self.cloud.rename_virtualfolder(old, new)

    async def delete_virtualfolder(self, name: str, force: bool = False) -> None:
        await self.cloud.delete_virtualfolder(name, force=force)

    async def move(self, src: str, target: str) -> CloudFile | CloudFolder:
        return await self.cloud.move(src, target)

    async def delete(self, path: str) -> None:
        await self.cloud.delete(path)

    async def item_metadata(self, path: str) -> CloudFile | CloudFolder:
        return await self.cloud.file_metadata(path)

    async def set_favorite(self, uri: str, favorite: bool) -> None:
        if favorite:
            await self.cloud.favorite(uri)
        else:
            await self.cloud.unfavorite(uri)

    async def set_tags(self, uri: str, tags: str | None) -> None:
        if tags is None or not tags.strip():
            await self.cloud.untag(uri)
        else:
            await self.cloud.tag(uri, tags)

    async def favorites(self) -> FolderListing:
        return await self.cloud.favorites(virtualfolder="*")

    async def trash(self, virtualfolder: str) -> FolderListing:
        listing = FolderListing()
        async for item in self.cloud.iter_pages("trash", virtualfolder=virtualfolder,
                                                deep=True, count=MAX_COUNT):
            (listing.folders if isinstance(item, CloudFolder) else listing.files).append(item)
        return listing

    async def restore(self, path: str) -> None:
        await self.cloud.restore(path)
