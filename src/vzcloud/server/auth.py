"""Tokens and passwords of the embedded cloud: issue, check, rotate, revoke.

Tokens and client secrets are random and stored only as SHA-256 digests; passwords are
hashed with scrypt (slow, salted). Nothing here logs a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from vzcloud.api.errors import UnauthorizedError
from vzcloud.api.models import Token
from vzcloud.server.config import ServerConfig
from vzcloud.server.store import Account, Store

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${h.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, want = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"), salt=bytes.fromhex(salt),
            n=int(n), r=int(r), p=int(p),
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), want)


def issue_tokens(
    store: Store, config: ServerConfig, account_id: int, client_id: str, family: str | None = None
) -> Token:
    """A new access token and refresh token for ``account_id`` (in ``family``)."""
    access = secrets.token_urlsafe(32)
    refresh = secrets.token_urlsafe(32)
    family = family or secrets.token_hex(8)
    now = time.time()
    with store.tx() as db:
        db.execute(
            "INSERT INTO tokens (token_hash, kind, account_id, client_id, family, expires,"
            " created) VALUES (?, 'access', ?, ?, ?, ?, ?)",
            (digest(access), account_id, client_id, family, now + config.access_token_ttl, now),
        )
        db.execute(
            "INSERT INTO tokens (token_hash, kind, account_id, client_id, family, expires,"
            " created) VALUES (?, 'refresh', ?, ?, ?, ?, ?)",
            (digest(refresh), account_id, client_id, family, now + config.refresh_token_ttl, now),
        )
    return Token(access_token=access, refresh_token=refresh,
                 expires_in=int(config.access_token_ttl), token_type="Bearer")


def authenticate(store: Store, token: str | None) -> Account:
    """The account an access token belongs to, or UnauthorizedError saying why not."""
    if not token:
        raise UnauthorizedError("missing access token", error="invalid_request")
    with store.tx() as db:
        row = db.execute(
            "SELECT account_id, expires, revoked FROM tokens WHERE token_hash=? AND kind='access'",
            (digest(token),),
        ).fetchone()
    if row is None:
        raise UnauthorizedError("invalid access token")
    if row["revoked"]:
        raise UnauthorizedError("access token revoked")
    if row["expires"] <= time.time():
        raise UnauthorizedError("access token expired")
    account = store.account_by_id(row["account_id"])
    if account is None:
        raise UnauthorizedError("account no longer exists")
    return account


def expire_access_tokens(store: Store, account_id: int) -> None:
    """Make every access token of an account expired now (tests, fault injection)."""
    with store.tx() as db:
        db.execute(
            "UPDATE tokens SET expires=? WHERE account_id=? AND kind='access'",
            (time.time() - 1, account_id),
        )
