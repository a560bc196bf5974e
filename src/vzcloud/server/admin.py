"""Administration of an embedded cloud: users, clients and tokens, for the CLI and tests."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from vzcloud.api.errors import BadRequestError, NotFoundError
from vzcloud.api.models import Token
from vzcloud.server.app import CloudServer
from vzcloud.server.auth import digest, hash_password, issue_tokens
from vzcloud.server.store import Account

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8976/callback"


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str


def create_user(
    cloud: CloudServer, username: str, password: str | None = None, quota: int | None = None
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
    cloud: CloudServer, redirect_uri: str = DEFAULT_REDIRECT_URI, name: str = "",
    client_id: str | None = None, client_secret: str | None = None,
) -> Client:
    """Register an OAuth client; the secret is returned once and stored hashed."""
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


def tokens_for(cloud: CloudServer, username: str, client_id: str) -> Token:
    """Fresh tokens for a user without the browser flow (scripts, tests, first run)."""
    account = cloud.store.account_by_username(username)
    if account is None:
        raise NotFoundError(f"no user {username!r}")
    with cloud.store.tx() as db:
        if not db.execute("SELECT 1 FROM clients WHERE client_id=?", (client_id,)).fetchone():
            raise NotFoundError(f"no client {client_id!r}")
    return issue_tokens(cloud.store, cloud.config, account.id, client_id)
