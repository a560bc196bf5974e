"""The objects of the Cloud API and their JSON form, with the wire's field names.

Every model is a dataclass whose fields are snake_case; ``wire`` metadata names the JSON
key where it differs. ``Model.from_json`` tolerates missing and unknown keys (unknown ones
are kept in ``extra`` and written back by ``to_json``), so a newer server never breaks an
older client. Models read both as attributes and by key: ``f.parent_path``,
``f["parent_path"]`` and ``f["parentPath"]`` are the same value.

The server builds its responses through these same classes, so the wire shapes are
declared once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

M = TypeVar("M", bound="Model")


def wire(name: str, **kwargs: Any) -> Any:
    """A dataclass field serialised under a different JSON key."""
    return field(metadata={"wire": name}, **kwargs)


def _nested(cls: type[Model], many: bool = False, **kwargs: Any) -> Any:
    meta = kwargs.pop("metadata", {})
    return field(metadata={**meta, "model": cls, "many": many}, **kwargs)


class Model:
    """Base of every API object: JSON in and out, attribute and key access."""

    extra: dict[str, Any]
    _wire_names: ClassVar[dict[str, str]]  # attribute -> wire key
    _attr_names: ClassVar[dict[str, str]]  # wire key -> attribute

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def _maps(cls) -> tuple[dict[str, str], dict[str, str]]:
        if "_wire_names" not in cls.__dict__:
            wires = {
                f.name: f.metadata.get("wire", f.name)
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if f.name != "extra"
            }
            cls._wire_names = wires
            cls._attr_names = {v: k for k, v in wires.items()}
        return cls._wire_names, cls._attr_names

    @classmethod
    def from_json(cls: type[M], data: Any) -> M:
        """Build from a decoded JSON object; raises ValueError if it is not an object."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        wires, attrs = cls._maps()
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key, value in data.items():
            attr = attrs.get(key)
            if attr is None:
                extra[key] = value
                continue
            sub = fields[attr].metadata.get("model")
            if sub is not None and value is not None:
                if fields[attr].metadata.get("many"):
                    value = [sub.from_json(v) for v in (value if isinstance(value, list) else [value])]
                else:
                    value = sub.from_json(value)
            kwargs[attr] = value
        obj = cls(**kwargs)
        obj.extra = extra
        return obj

    def to_json(self) -> dict[str, Any]:
        """The JSON object for the wire (None-valued fields are left out)."""
        wires, _ = self._maps()
        out: dict[str, Any] = {}
        for attr, key in wires.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if isinstance(value, Model):
                value = value.to_json()
            elif isinstance(value, list):
                value = [v.to_json() if isinstance(v, Model) else v for v in value]
            out[key] = value
        out.update(getattr(self, "extra", None) or {})
        return out

    # Key access, as the seed's objects allowed.
    def __getitem__(self, key: str) -> Any:
        wires, attrs = self._maps()
        if key in wires:
            return getattr(self, key)
        if key in attrs:
            return getattr(self, attrs[key])
        extra = getattr(self, "extra", None) or {}
        if key in extra:
            return extra[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return list(self._maps()[0])


def _extra() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


# Files and folders -----------------------------------------------------------------------


@dataclass(eq=True)
class CloudFile(Model):
    """A file. ``path`` is ``parent_path + "/" + name``."""

    name: str = ""
    parent_path: str = wire("parentPath", default="")
    size: int = 0
    checksum: str | None = None
    content_accessible: bool | None = wire("contentAccessible", default=None)
    content_token: str | None = wire("contentToken", default=None)
    deleted: bool = False
    extension: str | None = None
    system_attributes: dict[str, Any] = wire("systemAttributes", default_factory=dict)
    version: int | None = None
    version_created: str | None = wire("versionCreated", default=None)
    creation_date: str | None = wire("creationDate", default=None)
    view_uid: list[Any] = wire("viewUid", default_factory=list)
    uri: str | None = None
    share_association: list[Any] = wire("shareAssociation", default_factory=list)
    favorite: bool | None = None  # decided: also sent, so a listing tells favorites apart
    tags: str | None = None  # decided: the comma-separated tags, when any
    extra: dict[str, Any] = _extra()

    @property
    def path(self) -> str:
        return join_path(self.parent_path, self.name)

    @property
    def mime_type(self) -> str:
        return str(self.system_attributes.get("mimeType", "application/octet-stream"))


@dataclass(eq=True)
class CloudFolder(Model):
    """A folder; a virtual folder has ``parent_path == "/"``."""

    name: str = ""
    parent_path: str = wire("parentPath", default="")
    size: int = 0
    count: int = 0
    deleted: bool = False
    version: int | None = None
    version_created: str | None = wire("versionCreated", default=None)
    creation_date: str | None = wire("creationDate", default=None)
    view_uid: list[Any] = wire("viewUid", default_factory=list)
    uri: str | None = None
    share_association: list[Any] = wire("shareAssociation", default_factory=list)
    favorite: bool | None = None
    tags: str | None = None
    extra: dict[str, Any] = _extra()

    @property
    def path(self) -> str:
        return join_path(self.parent_path, self.name)


def join_path(parent: str, name: str) -> str:
    """``/A`` + ``b`` -> ``/A/b``; ``/`` + ``A`` -> ``/A``; ``""`` + ``""`` -> ``/``."""
    parent = parent.rstrip("/")
    return f"{parent}/{name}" if name else (parent or "/")


# Account and OAuth -----------------------------------------------------------------------


@dataclass
class Account(Model):
    """The user's id and storage usage. The wire nests usage: ``{"usage": {...}, "id"}``."""

    id: str = ""
    quota: int = 0
    quota_used: int = 0
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_json(cls, data: Any) -> Account:
        if not isinstance(data, dict):
            raise ValueError("Account: expected a JSON object")
        usage = data.get("usage") or {}
        return cls(id=str(data.get("id", "")), quota=int(usage.get("quota", 0)),
                   quota_used=int(usage.get("quotaUsed", 0)))

    def to_json(self) -> dict[str, Any]:
        return {"usage": {"quota": self.quota, "quotaUsed": self.quota_used}, "id": self.id}


@dataclass
class Token(Model):
    """OAuth tokens. ``expires_in`` is seconds from issue."""

    access_token: str = ""
    refresh_token: str | None = None
    expires_in: int | None = None
    token_type: str = "Bearer"
    extra: dict[str, Any] = _extra()

    def __repr__(self) -> str:  # never print a token
        return f"Token(token_type={self.token_type!r}, expires_in={self.expires_in!r}, ...)"


@dataclass
class UploadIntent(Model):
    upload_url: str = wire("uploadurl", default="")
    commit_url: str | None = wire("commiturl", default=None)
    extra: dict[str, Any] = _extra()


# Contacts --------------------------------------------------------------------------------


@dataclass
class Contact(Model):
    id: str | None = None
    version: int | None = None
    firstname: str | None = None
    lastname: str | None = None
    middlename: str | None = None
    nameprefix: str | None = None
    namesuffix: str | None = None
    birthday: str | None = None
    anniversary: str | None = None
    orgname: str | None = None
    jobtitle: str | None = None
    note: str | None = None
    created: str | None = None
    modified: str | None = None
    favorite: bool | None = None
    tel: list[dict[str, Any]] = field(default_factory=list)
    email: list[dict[str, Any]] = field(default_factory=list)
    address: list[dict[str, Any]] = field(default_factory=list)
    im: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = _extra()


# Playlists -------------------------------------------------------------------------------


@dataclass
class Playlist(Model):
    uid: str = ""
    name: str = ""
    type: str = ""
    mime_type_regex: str | None = wire("mimeTypeRegex", default=None)
    creation_date: str | None = wire("creationDate", default=None)
    last_modified_date: str | None = wire("lastModifiedDate", default=None)
    uri: str | None = None
    paths: list[str] = field(default_factory=list)
    extra: dict[str, Any] = _extra()


@dataclass
class PlaylistItem(Model):
    itemuid: str = ""
    filename: str = ""
    path: str = ""
    mime_type: str | None = wire("mimeType", default=None)
    size: int = 0
    version_created: str | None = wire("versionCreated", default=None)
    content_token: str | None = wire("contentToken", default=None)
    checksum: str | None = None
    extension: str | None = None
    tags: str | None = None
    uri: str | None = None
    extra: dict[str, Any] = _extra()


@dataclass
class PlaylistAdd(Model):
    """Decided: one element of ``{"paths": [...]}`` after adding items."""

    path: str = ""
    itemuid: str | None = None
    extra: dict[str, Any] = _extra()


# Shares ----------------------------------------------------------------------------------


@dataclass
class ShareRequest(Model):
    """What to share: ``location`` is the item's URI."""

    name: str = ""
    type: str = "file"
    location: str = ""
    size: int | None = None
    extra: dict[str, Any] = _extra()


@dataclass
class ShareResource(Model):
    uid: str = ""
    name: str = ""
    type: str = "file"
    location: str = ""
    size: int | None = None
    content_token: str | None = wire("contentToken", default=None)
    checksum: str | None = None
    last_modified_date: str | None = wire("lastModifiedDate", default=None)
    extra: dict[str, Any] = _extra()


@dataclass
class Link(Model):
    rel: str = ""
    link: str = ""
    extra: dict[str, Any] = _extra()


@dataclass
class Share(Model):
    uid: str = ""
    name: str | None = None
    owner: str | None = None
    sharer: str | None = None
    total_resource_count: int = wire("totalResourceCount", default=0)
    expires_in: int | None = wire("expiresIn", default=None)
    expiration_date: str | None = wire("expirationDate", default=None)
    creation_date: str | None = wire("creationDate", default=None)
    last_modified_date: str | None = wire("lastModifiedDate", default=None)
    public_invite_key: str | None = wire("publicInviteKey", default=None)
    links: list[Link] = _nested(Link, many=True, default_factory=list)
    resources: list[ShareResource] = _nested(ShareResource, many=True, default_factory=list)
    extra: dict[str, Any] = _extra()


@dataclass
class SharesCursor(Model):
    """Where the next page of ``shares`` starts (``None`` = no more pages)."""

    cursor: str | None = None
    links: list[Link] = _nested(Link, many=True, default_factory=list)
    extra: dict[str, Any] = _extra()


# Named results with the seed's field names ------------------------------------------------


@dataclass
class FolderListing(Model):
    """``metadata``, ``search``, ``trash`` and ``favorites`` results: files and folders."""

    files: list[CloudFile] = _nested(CloudFile, many=True, default_factory=list)
    folders: list[CloudFolder] = _nested(CloudFolder, many=True, default_factory=list)
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_wire(cls, data: Any) -> FolderListing:
        """From the wire's ``{"file": [...], "folder": [...]}`` (either may be missing)."""
        if not isinstance(data, dict):
            raise ValueError("listing: expected a JSON object")
        return cls(
            files=[CloudFile.from_json(f) for f in _as_list(data.get("file"))],
            folders=[CloudFolder.from_json(f) for f in _as_list(data.get("folder"))],
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "file": [f.to_json() for f in self.files],
            "folder": [f.to_json() for f in self.folders],
        }


@dataclass
class FullviewResult(Model):
    """``fullview``: files, folders with no files below them, deleted paths, new etag.

    ``changed`` is False when the server answered 412 (nothing changed since ``etag``).
    Apply ``deleted`` before ``files`` and ``empty_folders``.
    """

    files: list[CloudFile] = _nested(CloudFile, many=True, default_factory=list)
    empty_folders: list[CloudFolder] = _nested(CloudFolder, many=True, default_factory=list)
    etag: str | None = None
    deleted: list[str] = field(default_factory=list)
    changed: bool = True
    extra: dict[str, Any] = _extra()


@dataclass
class SharesResult(Model):
    shares: list[Share] = _nested(Share, many=True, default_factory=list)
    shares_cursor: SharesCursor | None = _nested(SharesCursor, default=None)
    extra: dict[str, Any] = _extra()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
