"""Extended attributes: the cloud's metadata of every item, under ``user.vzcloud.``.

| name | value | change |
|---|---|---|
| ``user.vzcloud.tags`` | the tags, comma-separated (absent: none) | set: replace them (the cloud normalises: trims, drops empty and repeated ones); remove: clear |
| ``user.vzcloud.favorite`` | ``0`` or ``1`` | set ``0``/``1`` (else EINVAL); remove: ``0`` |
| ``user.vzcloud.checksum`` | SHA-256 hex of the cloud's content (files without local changes) | EPERM |
| ``user.vzcloud.uri`` | the item's uri (it names a path: after a rename, current from the next sync) | EPERM |
| ``user.vzcloud.content_type`` | the file's MIME type | EPERM |
| ``user.vzcloud.version`` | the cloud's version (files without local changes; folders) | EPERM |

Reading needs no network: the values come from the metadata the syncer keeps, except
for a folder the first fullview did not describe (it lists only folders without files),
fetched once. A change goes to the cloud first (``CloudMarks``), so it survives the next
sync. Any other name: ENODATA to read or remove, ENOTSUP to set (nothing else can be
stored); a name outside the user namespace (``security.``, ``system.``, ``trusted.``) is
ENOTSUP to read too, answered by the FUSE adapter (``operations.getxattr``): ``ls -l``
then stops asking for every entry. The root and the special entries have none (setting one is EPERM, or EROFS in
``.trash``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from vzcloud.fs.errno_map import FsError
from vzcloud.fs.metadata import ROOT_INODE, Inode
from vzcloud.fs.special import CloudMarks, SpecialDirs, is_special

if TYPE_CHECKING:
    from vzcloud.fs.core import FilesystemCore

PREFIX = "user.vzcloud."
TAGS = PREFIX + "tags"
FAVORITE = PREFIX + "favorite"
CHECKSUM = PREFIX + "checksum"
URI = PREFIX + "uri"
CONTENT_TYPE = PREFIX + "content_type"
VERSION = PREFIX + "version"
READ_ONLY = frozenset({CHECKSUM, URI, CONTENT_TYPE, VERSION})
ENOATTR = errno.ENODATA  # what pyfuse3.ENOATTR is on Linux


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class Xattrs:
    def __init__(self, core: FilesystemCore, marks: CloudMarks, special: SpecialDirs) -> None:
        self.core = core
        self.marks = marks
        self.special = special

    def _values(self, inode: Inode) -> dict[str, str]:
        if inode.ino == ROOT_INODE or is_special(inode.ino):
            return {}
        values = {FAVORITE: "1" if inode.favorite else "0"}
        if inode.tags:
            values[TAGS] = inode.tags
        if inode.uri:
            values[URI] = inode.uri
        # Local changes not uploaded yet: the cloud's checksum and version are not this
        # content's.
        in_sync = not inode.dirty and not self.core.meta.has_upload_job(inode.ino)
        if inode.is_dir or in_sync:
            if inode.checksum and not inode.is_dir:
                values[CHECKSUM] = inode.checksum
            if inode.version is not None:
                values[VERSION] = str(inode.version)
        if inode.mime_type and not inode.is_dir:
            values[CONTENT_TYPE] = inode.mime_type
        return values

    async def _described(self, ino: int) -> Inode:
        if is_special(ino):
            return self.special.getattr(ino)
        return await self.marks.complete(ino)

    async def get(self, ino: int, name: bytes) -> bytes:
        key = _name(name)
        if not key.startswith(PREFIX):  # security.capability & co: asked on writes, fast
            raise FsError(ENOATTR)
        value = self._values(await self._described(ino)).get(key)
        if value is None:
            raise FsError(ENOATTR)
        return value.encode("utf-8")

    async def names(self, ino: int) -> list[bytes]:
        return [k.encode("utf-8") for k in self._values(await self._described(ino))]

    def _check_changeable(self, ino: int) -> None:
        if is_special(ino):
            raise self.special.refusal(ino)
        if ino == ROOT_INODE:
            raise FsError(errno.EPERM, "the root has no cloud attributes")
        if self.core.options.read_only:
            raise FsError(errno.EROFS, "mounted read-only")

    async def set(self, ino: int, name: bytes, value: bytes) -> None:
        key = _name(name)
        self._check_changeable(ino)
        self.core.inode(ino)
        if key == FAVORITE:
            flag = value.strip()
            if flag not in (b"0", b"1"):
                raise FsError(errno.EINVAL, f"{FAVORITE} is 0 or 1")
            await self.marks.set_favorite(ino, flag == b"1")
        elif key == TAGS:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                raise FsError(errno.EINVAL, "tags are UTF-8 text") from None
            await self.marks.set_tags(ino, text)
        elif key in READ_ONLY:
            raise FsError(errno.EPERM, f"{key} is read-only")
        else:
            raise FsError(errno.ENOTSUP, f"only {TAGS} and {FAVORITE} can be set")

    async def remove(self, ino: int, name: bytes) -> None:
        key = _name(name)
        self._check_changeable(ino)
        inode = self.core.inode(ino)
        if key == FAVORITE:
            await self.marks.set_favorite(ino, False)
        elif key == TAGS:
            if not inode.tags:
                raise FsError(ENOATTR)
            await self.marks.set_tags(ino, None)
        elif key in READ_ONLY:
            raise FsError(errno.EPERM, f"{key} is read-only")
        else:
            raise FsError(ENOATTR)
