"""Administration of an embedded cloud: users, clients and tokens, for the CLI and tests.

Every function takes anything with ``store`` and ``config`` (``AdminTarget``): a running
``CloudServer``, or an ``OfflineCloud`` from ``open_data_dir``, which opens only the
database. The CLI uses the latter, because starting a CloudServer runs crash recovery
(removing temporary and unreferenced blobs), which would break the uploads of a server
that is running on the same data directory; SQLite in WAL mode lets both write.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from vzcloud.api.errors import BadRequestError, NotFoundError
from vzcloud.api.models import Token
from vzcloud.server.auth import digest, hash_password, issue_tokens
from vzcloud.server.config import ServerConfig
from vzcloud.server.store import Account, Store

DATABASE_NAME = "cloud.db"


class AdminTarget(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def config(self) -> ServerConfig: ...


@dataclass
class OfflineCloud:
    """The database of a data directory, without blobs, recovery or HTTP."""

    store: Store
    config: ServerConfig


@contextlib.contextmanager
def open_data_dir(data_dir: Path) -> Iterator[OfflineCloud]:
    """Open the database of an existing embedded cloud; NotFoundError if there is none."""
    db = data_dir / DATABASE_NAME
    if not db.is_file():
        raise NotFoundError(f"no embedded cloud in {data_dir} (no {DATABASE_NAME})")
    store = Store(db)
    try:
        yield OfflineCloud(store, ServerConfig(data_dir=data_dir))
    finally:
        store.close()


def has_accounts(cloud: AdminTarget) -> bool:
    with cloud.store.tx() as db:
        return db.execute("SELECT 1 FROM accounts LIMIT 1").fetchone() is not None


def first_username(cloud: AdminTarget) -> str | None:
    """The oldest account's user name (the one ``vzcloud serve`` made on its first run)."""
    with cloud.store.tx() as db:
        row = db.execute("SELECT username FROM accounts ORDER BY id LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def check_redirect_uri(uri: str) -> str:
    """``uri`` if it can be registered: absolute (``scheme:...``), no fragment, no spaces
    (RFC 6749 3.1.2); else BadRequestError."""
    parts = urlsplit(uri)
    if not parts.scheme or "#" in uri or any(c.isspace() for c in uri) or len(uri) > 2000:
        raise BadRequestError(
            f"invalid redirect URI {uri!r}: it must be absolute (like "
            "http://127.0.0.1:8977/callback), without a #fragment or spaces"
        )
    if parts.scheme in ("http", "https") and not parts.netloc:
        raise BadRequestError(f"invalid redirect URI {uri!r}: no host")
    return uri

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8977/callback"


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str


def create_user(
    cloud: AdminTarget, username: str, password: str | None = None, quota: int | None = None
) -> tuple[Account, str]:
    """A new account with the default virtual folders; returns it and its password."""
    if not username or len(username) > 128 or any(c.isspace() for c in username):
        raise BadRequestError("a user name is 1 to 128 characters without spaces")
    password = password or secrets.token_urlsafe(12)
    account = cloud.store.create_account(
        username, hash_password(password), quota if quota is not None else cloud.config.default_quota
    )
    return account, password


def create_client(
    cloud: AdminTarget, redirect_uri: str = DEFAULT_REDIRECT_URI, name: str = "",
    client_id: str | None = None, client_secret: str | None = None,
) -> Client:
    """Register an OAuth client; the secret is returned once and stored hashed."""
    check_redirect_uri(redirect_uri)
    client_id = client_id or secrets.token_hex(12)
    client_secret = client_secret or secrets.token_urlsafe(24)
    with cloud.store.tx() as db:
        if db.execute("SELECT 1 FROM clients WHERE client_id=?", (client_id,)).fetchone():
            raise BadRequestError(f"client {client_id!r} exists already")
        db.execute(
            "INSERT INTO clients (client_id, secret_hash, redirect_uri, name, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (client_id, digest(client_secret), redirect_uri, name, time.time()),
        )
    return Client(client_id, client_secret, redirect_uri)


def tokens_for(cloud: AdminTarget, username: str, client_id: str) -> Token:
    """Fresh tokens for a user without the browser flow (scripts, tests, first run)."""
    account = cloud.store.account_by_username(username)
    if account is None:
        raise NotFoundError(f"no user {username!r}")
    with cloud.store.tx() as db:
        if not db.execute("SELECT 1 FROM clients WHERE client_id=?", (client_id,)).fetchone():
            raise NotFoundError(f"no client {client_id!r}")
    return issue_tokens(cloud.store, cloud.config, account.id, client_id)
