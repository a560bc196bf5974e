"""Rate limit of password attempts at the OAuth sign-in page (``POST /oauth2/authorize``).

Guessing a password through the sign-in form must be slow. Each account (by user name)
and each client IP address may fail ``config.login_max_failures`` times within
``config.login_window`` seconds; the failure that reaches the limit locks that account,
or that address, for ``login_window`` seconds. While locked, every attempt gets 429 with
``Retry-After`` and its password is not even checked: a right password accepted during
a lockout would confirm a guess, and the lock would slow nothing. Attempts refused during
a lockout do not extend it. A successful sign-in clears the account's failures, not the
address's (one known password must not reset an address guessing at other accounts).

The per-account limit stops guessing one password from many addresses; the per-address
limit stops one address trying a few passwords on many accounts.

State lives in memory, per server (``CloudServer.login_limiter``), and is forgotten on
restart. It stays small: records whose failures and lock have all expired are dropped
once more than ``SWEEP_ABOVE`` are kept. Thread-safe (handlers run in a thread pool).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vzcloud.server.config import ServerConfig

SWEEP_ABOVE = 10_000  # records kept before expired ones are swept


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)  # clock() of recent failures
    locked_until: float = 0.0


class LoginLimiter:
    """Counts failed sign-ins per account and per address; reads the limits from
    ``config`` at each call (so a test or an operator may change them live)."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], _Record] = {}

    @staticmethod
    def _keys(username: str, address: str) -> list[tuple[str, str]]:
        return [("account", username), ("address", address)]

    def retry_after(self, username: str, address: str) -> int | None:
        """Whole seconds until ``username`` from ``address`` may try again (at least 1),
        or None if it may try now."""
        now = self.clock()
        with self._lock:
            waits = [record.locked_until - now for key in self._keys(username, address)
                     if (record := self._records.get(key)) is not None]
        wait = max(waits, default=0.0)
        return math.ceil(wait) if wait > 0 else None

    def failed(self, username: str, address: str) -> None:
        """A wrong password: count it for the account and the address."""
        now = self.clock()
        window, limit = self.config.login_window, self.config.login_max_failures
        with self._lock:
            for key in self._keys(username, address):
                record = self._records.setdefault(key, _Record())
                record.failures = [t for t in record.failures if t > now - window]
                record.failures.append(now)
                if len(record.failures) >= limit:
                    record.locked_until = now + window
                    record.failures.clear()
            if len(self._records) > SWEEP_ABOVE:
                self._sweep(now - window, now)

    def succeeded(self, username: str) -> None:
        """A right password: the account's failures are forgiven."""
        with self._lock:
            self._records.pop(("account", username), None)

    def _sweep(self, oldest: float, now: float) -> None:
        """Drop records with no failure after ``oldest`` and no lock left. Caller holds
        the lock."""
        for key in [key for key, record in self._records.items()
                    if record.locked_until <= now and all(t <= oldest for t in record.failures)]:
            del self._records[key]
