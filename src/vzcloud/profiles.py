"""Credential profiles: which cloud to talk to and with which client and tokens.

A profile is one JSON file, ``<config dir>/profiles/<name>.json``; the config dir is
``$VZCLOUD_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/vzcloud``, else ``~/.config/vzcloud``.
``<config dir>/default-profile`` holds the name used when none is given (and
``$VZCLOUD_PROFILE`` overrides it); without either it is ``local``, the profile
``vzcloud serve`` writes.

Files hold secrets (client secret, tokens), so: the directories are made 0700, and a
profile is written atomically: a temporary file in the same directory created 0600 by
``os.open`` (never readable by others, not even for an instant), written, fsynced, then
renamed over the old file, and the directory fsynced. A reader sees the old or the new
file, never a torn one. Read-modify-write of a profile (``update_tokens``) holds an
exclusive ``flock`` on ``profiles/.<name>.lock``, so the SDK and a mount refreshing at
once in different processes do not lose a rotated refresh token.

Nothing here logs a token; ``repr(Profile)`` shows secrets as ``***``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vzcloud.durable import fsync_dir

DEFAULT_PROFILE = "local"
FORMAT_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SECRET_FIELDS = ("client_secret", "access_token", "refresh_token")


class ProfileError(Exception):
    """A profile cannot be used: bad name, unreadable or malformed file."""


class ProfileNotFoundError(ProfileError):
    """No profile by that name."""


class TokenLike(Protocol):
    """What ``update_tokens`` needs of a token (``vzcloud.api.models.Token`` is one)."""

    access_token: str
    refresh_token: str | None
    expires_in: int | None


@dataclass
class Profile:
    """One set of credentials. ``server`` is the base URL, without ``/cloud/1``."""

    name: str
    server: str
    client_id: str
    client_secret: str
    redirect_uri: str
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None  # seconds since the epoch; None = unknown

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.name in _SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
        )
        return f"Profile({shown})"

    __str__ = __repr__

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["name"]  # the file name is the name
        return {"format": FORMAT_VERSION, **data}

    @classmethod
    def from_json(cls, name: str, data: Any) -> Profile:
        if not isinstance(data, dict):
            raise ProfileError(f"profile {name!r} is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)} - {"name"}
        values = {k: v for k, v in data.items() if k in known}
        missing = {"server", "client_id", "client_secret", "redirect_uri"} - values.keys()
        if missing:
            raise ProfileError(f"profile {name!r} lacks {', '.join(sorted(missing))}")
        for key, value in values.items():
            wanted: tuple[type, ...] = (int, float) if key == "expires_at" else (str,)
            if value is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
                raise ProfileError(f"profile {name!r}: {key} has the wrong type")
        return cls(name=name, **values)


def config_dir() -> Path:
    """Where profiles live (see the module docstring); not created here."""
    if os.environ.get("VZCLOUD_CONFIG_DIR"):
        return Path(os.environ["VZCLOUD_CONFIG_DIR"])
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "vzcloud"


def _profiles_dir() -> Path:
    return config_dir() / "profiles"


def check_name(name: str) -> str:
    """``name`` if it is a valid profile name (1-64 of letters, digits, ``.``, ``_``, ``-``,
    not starting with a dot or dash), else ProfileError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProfileError(
            f"invalid profile name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _path(name: str) -> Path:
    return _profiles_dir() / f"{check_name(name)}.json"


def _private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it 0700: it holds secrets."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600 from the file's creation."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def default_name() -> str:
    """The profile used when none is named: $VZCLOUD_PROFILE, the default-profile file,
    else ``local``."""
    if os.environ.get("VZCLOUD_PROFILE"):
        return check_name(os.environ["VZCLOUD_PROFILE"])
    try:
        text = (config_dir() / "default-profile").read_text("utf-8").strip()
    except FileNotFoundError:
        return DEFAULT_PROFILE
    except OSError as exc:
        raise ProfileError(f"cannot read {config_dir() / 'default-profile'}: {exc.strerror}") from None
    return check_name(text) if text else DEFAULT_PROFILE


def set_default(name: str) -> None:
    """Make ``name`` the default profile (it need not exist yet)."""
    check_name(name)
    _private_dir(config_dir())
    write_private(config_dir() / "default-profile", (name + "\n").encode())


def load(name: str | None = None) -> Profile:
    """The profile ``name`` (default: ``default_name()``); ProfileNotFoundError if absent."""
    name = default_name() if name is None else name
    path = _path(name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProfileNotFoundError(f"no profile {name!r} (looked for {path})") from None
    except OSError as exc:
        raise ProfileError(f"cannot read profile {name!r} ({path}): {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ProfileError(f"profile {name!r} ({path}) is not valid JSON: {exc}") from None
    return Profile.from_json(name, data)


def save(profile: Profile) -> Path:
    """Write ``profile`` (atomically, 0600); returns its file."""
    path = _path(profile.name)
    _private_dir(config_dir())
    _private_dir(path.parent)
    data = json.dumps(profile.to_json(), indent=2, sort_keys=True) + "\n"
    write_private(path, data.encode())
    return path


def exists(name: str) -> bool:
    return _path(name).is_file()


def list_profiles() -> list[str]:
    """Names of the saved profiles, sorted."""
    try:
        entries = list(_profiles_dir().iterdir())
    except FileNotFoundError:
        return []
    return sorted(
        p.stem for p in entries
        if p.suffix == ".json" and not p.name.startswith(".") and _NAME.fullmatch(p.stem)
    )


def delete(name: str) -> None:
    """Remove a profile; ProfileNotFoundError if there is none by that name."""
    path = _path(name)
    try:
        path.unlink()
    except FileNotFoundError:
        raise ProfileNotFoundError(f"no profile {name!r} (looked for {path})") from None
    with contextlib.suppress(FileNotFoundError):
        (path.parent / f".{name}.lock").unlink()
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the profile's exclusive lock (between processes) for a read-modify-write."""
    directory = _path(name).parent
    _private_dir(config_dir())
    _private_dir(directory)
    fd = os.open(directory / f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_tokens(name: str, token: TokenLike) -> Profile:
    """Store freshly issued tokens in profile ``name`` and return the updated profile.

    A token without a refresh token keeps the stored one. ``expires_at`` is computed from
    ``expires_in`` (None if the server did not say).
    """
    with locked(name):
        profile = load(name)
        profile.access_token = token.access_token
        if token.refresh_token:
            profile.refresh_token = token.refresh_token
        profile.expires_at = time.time() + token.expires_in if token.expires_in else None
        save(profile)
    return profile


def on_refreshed(name: str) -> Callable[[TokenLike], None]:
    """A callback for the SDK's ``on_refreshed``: persists each new token to ``name``."""

    def persist(token: TokenLike) -> None:
        update_tokens(name, token)

    return persist
