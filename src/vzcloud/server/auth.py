"""Tokens and passwords of the embedded cloud: issue, check, rotate, revoke.

Tokens and client secrets are random and stored only as SHA-256 digests; passwords are
hashed with scrypt (slow, salted). Nothing here logs a secret.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass

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


@functools.cache
def _dummy_hash() -> str:
    # A valid hash of a random password, checked against for unknown user names so that a
    # login takes as long whether or not the name exists.
    return hash_password(secrets.token_urlsafe(16))


def check_login(store: Store, username: str, password: str) -> Account | None:
    """The account if ``password`` is its password, else None (same cost either way)."""
    with store.tx() as db:
        row = db.execute(
            "SELECT id, password_hash FROM accounts WHERE username=?", (username,)
        ).fetchone()
    ok = check_password(password, row["password_hash"] if row is not None else _dummy_hash())
    return store.account_by_id(row["id"]) if ok and row is not None else None


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


def authenticate(store: Store, token: str | None,
                 verified: VerifiedTokens | None = None) -> Account:
    """The account an access token belongs to, or UnauthorizedError saying why not.
    A success is remembered in ``verified`` (if given) for ``VerifiedTokens.account``."""
    if not token:
        raise UnauthorizedError("missing access token", error="invalid_request")
    token_hash = digest(token)
    account: Account | None = None
    with store.tx() as db:  # nothing raised inside: a rollback would drop store.released
        row = db.execute(
            "SELECT account_id, expires, revoked FROM tokens WHERE token_hash=? AND kind='access'",
            (token_hash,),
        ).fetchone()
        if row is not None:
            account = store.account_by_id(row["account_id"])
            # Taken in the transaction that read the token: a change committed after it
            # (a revocation) moves the database's stamp past this one.
            stamp = _db_stamp(db)
    if row is None:
        raise UnauthorizedError("invalid access token")
    if row["revoked"]:
        raise UnauthorizedError("access token revoked")
    if row["expires"] <= time.time():
        raise UnauthorizedError("access token expired")
    if account is None:
        raise UnauthorizedError("account no longer exists")
    if verified is not None:
        verified.remember(token_hash, account, float(row["expires"]), stamp)
    return account


def _db_stamp(db: sqlite3.Connection) -> tuple[int, int]:
    """Changes as SQLite counts them: rows written through this connection (every
    INSERT, UPDATE, DELETE, even one rolled back) and ``PRAGMA data_version``, which moves
    when another connection (another process) commits. Equal stamps: nothing changed."""
    return db.total_changes, int(db.execute("PRAGMA data_version").fetchone()[0])


class VerifiedTokens:
    """Access tokens recently verified by ``authenticate``, so that a request with one
    costs no transaction, no worker thread and no account lookup.

    A remembered token counts only while the database is exactly as it was when it was
    verified (same ``_db_stamp``): any write at all, a revocation included, by this
    server or by another process, makes every entry stale, and the next request is
    verified in full again. So a revoked token is refused at once, and so is one whose
    family or account changed. Expiry is checked against the clock on each use. Only
    digests are kept, never a token.

    ``account`` runs on the event loop: it never waits for the store's lock (if another
    thread holds it, the answer is "not known" and the caller verifies in full).
    """

    MAX_ENTRIES = 4096

    def __init__(self, store: Store) -> None:
        self._store = store
        self._entries: dict[str, tuple[Account, float, tuple[int, int]]] = {}

    def remember(self, token_hash: str, account: Account, expires: float,
                 stamp: tuple[int, int]) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[token_hash] = (account, expires, stamp)

    def account(self, token: str | None) -> Account | None:
        """The account of ``token`` if it was verified and nothing changed since; None
        means "verify it" (``authenticate``), not "refused"."""
        if not token:
            return None
        entry = self._entries.get(digest(token))
        if entry is None:
            return None
        account, expires, stamp = entry
        if expires <= time.time():
            return None
        store = self._store
        if not store.lock.acquire(blocking=False):
            return None
        try:
            if store.db.in_transaction:  # only if this thread is inside one: be safe
                return None
            current = _db_stamp(store.db)
        finally:
            store.lock.release()
        return account if current == stamp else None


def expire_access_tokens(store: Store, account_id: int) -> None:
    """Make every access token of an account expired now (tests, fault injection)."""
    with store.tx() as db:
        db.execute(
            "UPDATE tokens SET expires=? WHERE account_id=? AND kind='access'",
            (time.time() - 1, account_id),
        )


# OAuth 2.0: clients, authorization codes, refresh and revocation ---------------------------
#
# A "family" is the chain of tokens grown from one authorization: the pair issued for an
# authorization code and every pair refreshed from it. The family of a code's tokens is
# derived from the code's digest, so a reused code finds them without extra bookkeeping.
# Outcomes that must both change the database and fail (a reused code or refresh token
# revokes its family) commit first and raise after the transaction, because an exception
# inside ``store.tx()`` rolls it back.


@dataclass(frozen=True)
class RegisteredClient:
    """An OAuth client as registered (its secret is only stored hashed)."""

    client_id: str
    redirect_uri: str
    name: str


def registered_client(store: Store, client_id: str) -> RegisteredClient | None:
    with store.tx() as db:
        row = db.execute(
            "SELECT client_id, redirect_uri, name FROM clients WHERE client_id=?", (client_id,)
        ).fetchone()
    return None if row is None else RegisteredClient(row[0], row[1], row[2])


def check_client(store: Store, client_id: str | None, client_secret: str | None) -> RegisteredClient:
    """The client if ``client_secret`` is its secret; else UnauthorizedError ``invalid_client``."""
    row = None
    if client_id:
        with store.tx() as db:
            row = db.execute(
                "SELECT client_id, redirect_uri, name, secret_hash FROM clients WHERE client_id=?",
                (client_id,),
            ).fetchone()
    # Hash and compare even for an unknown client, so timing does not tell which ids exist.
    expected = row["secret_hash"] if row is not None else digest(secrets.token_hex(16))
    if row is None or not hmac.compare_digest(digest(client_secret or ""), expected):
        raise UnauthorizedError("unknown client or wrong client secret", error="invalid_client")
    return RegisteredClient(row[0], row[1], row[2])


def code_family(code_hash: str) -> str:
    return "code-" + code_hash[:32]


def create_auth_code(
    store: Store, config: ServerConfig, client_id: str, account_id: int, redirect_uri: str
) -> str:
    """A new single-use authorization code, valid for ``config.auth_code_ttl`` seconds."""
    code = secrets.token_urlsafe(32)
    now = time.time()
    with store.tx() as db:
        # Spent and expired codes are kept a day so that a late replay still revokes tokens.
        db.execute("DELETE FROM auth_codes WHERE expires < ?", (now - 86400,))
        db.execute(
            "INSERT INTO auth_codes (code_hash, client_id, account_id, redirect_uri, expires)"
            " VALUES (?, ?, ?, ?, ?)",
            (digest(code), client_id, account_id, redirect_uri, now + config.auth_code_ttl),
        )
    return code


def _revoke_family(db: sqlite3.Connection, family: str) -> None:
    db.execute("UPDATE tokens SET revoked=1 WHERE family=?", (family,))


def redeem_auth_code(
    store: Store, config: ServerConfig, client_id: str, code: str, redirect_uri: str
) -> Token:
    """Exchange a code for tokens (once). A code must belong to ``client_id``, be unused and
    unexpired, and ``redirect_uri`` must be the one given at authorize; otherwise
    UnauthorizedError ``invalid_grant``. Presenting a spent code again revokes every token
    issued from it (the code may have been stolen)."""
    code_hash = digest(code)
    with store.tx() as db:
        row = db.execute("SELECT * FROM auth_codes WHERE code_hash=?", (code_hash,)).fetchone()
        if row is None or row["client_id"] != client_id:
            problem = "unknown authorization code"
        elif row["used"]:
            _revoke_family(db, code_family(code_hash))
            problem = "authorization code already used; the tokens issued for it are revoked"
        elif row["expires"] <= time.time():
            problem = "authorization code expired"
        elif row["redirect_uri"] != redirect_uri:
            problem = "redirect_uri differs from the one given at authorization"
        elif store.account_by_id(row["account_id"]) is None:
            problem = "the account of this code no longer exists"
        else:
            db.execute("UPDATE auth_codes SET used=1 WHERE code_hash=?", (code_hash,))
            return issue_tokens(store, config, row["account_id"], client_id,
                                family=code_family(code_hash))
    raise UnauthorizedError(problem, error="invalid_grant")


def refresh(store: Store, config: ServerConfig, client_id: str, refresh_token: str) -> Token:
    """Spend a refresh token of ``client_id`` for a new pair in the same family.

    Unknown, revoked, expired or another client's token: UnauthorizedError
    ``invalid_grant``. An already spent token also revokes its whole family (a copy of it
    is in someone else's hands), so the pair issued from it stops working too.
    """
    token_hash = digest(refresh_token)
    with store.tx() as db:
        row = db.execute(
            "SELECT * FROM tokens WHERE token_hash=? AND kind='refresh'", (token_hash,)
        ).fetchone()
        if row is None or row["client_id"] != client_id:
            problem = "unknown refresh token"
        elif row["revoked"]:
            problem = "refresh token revoked"
        elif row["used"]:
            _revoke_family(db, row["family"])
            problem = "refresh token already used; every token of its family is revoked"
        elif row["expires"] <= time.time():
            problem = "refresh token expired"
        elif store.account_by_id(row["account_id"]) is None:
            problem = "the account of this token no longer exists"
        else:
            db.execute("UPDATE tokens SET used=1 WHERE token_hash=?", (token_hash,))
            return issue_tokens(store, config, row["account_id"], client_id, family=row["family"])
    raise UnauthorizedError(problem, error="invalid_grant")


def revoke(store: Store, client_id: str, token: str) -> None:
    """Revoke an access token, or a refresh token with its whole family (RFC 7009).

    A token that is unknown or belongs to another client is left alone, silently.
    """
    with store.tx() as db:
        row = db.execute(
            "SELECT kind, family, client_id FROM tokens WHERE token_hash=?", (digest(token),)
        ).fetchone()
        if row is None or row["client_id"] != client_id:
            return
        if row["kind"] == "refresh":
            _revoke_family(db, row["family"])
        else:
            db.execute("UPDATE tokens SET revoked=1 WHERE token_hash=?", (digest(token),))


def refresh_token_account(store: Store, client_id: str, refresh_token: str) -> int | None:
    """The account id of a refresh token of ``client_id`` that could still be spent, or None."""
    with store.tx() as db:
        row = db.execute(
            "SELECT account_id, client_id, used, revoked, expires FROM tokens"
            " WHERE token_hash=? AND kind='refresh'",
            (digest(refresh_token),),
        ).fetchone()
    if (row is None or row["client_id"] != client_id or row["used"] or row["revoked"]
            or row["expires"] <= time.time()):
        return None
    return int(row["account_id"])
