"""Settings of one embedded cloud server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30


@dataclass
class ServerConfig:
    data_dir: Path
    # Public base URL (scheme://host:port) used in upload URLs and share links; None =
    # taken from each request's Host header.
    public_url: str | None = None
    default_quota: int = 50 * GiB
    # Largest unchunked upload and largest single chunk (the reference caps both at 100 MB;
    # SDKs switch to chunked at 100 MiB, so the cap is 100 MiB to keep them consistent).
    max_unchunked: int = 100 * MiB
    max_chunk: int = 100 * MiB
    max_file_size: int = 1 << 40
    max_json_body: int = 1 * MiB
    access_token_ttl: float = 9 * 3600
    refresh_token_ttl: float = 14 * 86400
    auth_code_ttl: float = 600
    # Sign-in page: failed passwords per account and per client address allowed within
    # login_window seconds before it is locked for login_window (see server.login_limit).
    login_max_failures: int = 5
    login_window: float = 300.0
    upload_ttl: float = 24 * 3600
    # Change-log rows kept per account; an etag older than what is kept gets 205.
    change_log_retention: int = 200_000
    folder_file_limit: int = 10_000
    versions_kept: int = 10
