"""``vzcloud serve``: run the embedded cloud in the foreground.

First run (no account in the data directory): creates a local user (named ``$USER``, or
``me``) with a random password, printed once and saved to ``DATA/initial-password``
(0600), and registers an OAuth client with ``admin.DEFAULT_REDIRECT_URI``.

Every run makes sure profile ``--profile`` (default ``local``) works with this server:
a missing profile, or one whose client is not registered here (another data directory),
gets a new client of its own and fresh tokens for the first account; a profile whose
refresh token can no longer be spent here gets fresh tokens; the server URL is updated
when the bind address changed. A profile of another server (not loopback, client
unknown here) is never overwritten. The first profile written becomes the default.

When ready, prints ``vzcloud: serving <url> (data <dir>, profile <name>)`` on stderr.
SIGINT and SIGTERM stop the server cleanly (exit 0). One ``serve`` per data directory
(an exclusive lock on ``DATA/serve.lock``).
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vzcloud import profiles
from vzcloud.cli import EXIT_FAILED, EXIT_OK, CliError, add_command
from vzcloud.cli._common import profile_name
from vzcloud.cli._systemd import notify
from vzcloud.logging_setup import LEVELS

if TYPE_CHECKING:
    from vzcloud.server.app import CloudServer

log = logging.getLogger("vzcloud.cli.serve")

DEFAULT_BIND = "127.0.0.1:8976"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/vzcloud/cloud``, else ``~/.local/share/vzcloud/cloud``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "vzcloud" / "cloud"


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port); port 0 picks a free one."""
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (like 127.0.0.1:8976, [::1]:8976 or 0.0.0.0:0)"
        )
    return host, int(port)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "serve", run,
        help="run the embedded cloud server in the foreground",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="data directory (default: $XDG_DATA_HOME/vzcloud/cloud)")
    parser.add_argument("--bind", type=parse_bind, default=parse_bind(DEFAULT_BIND),
                        metavar="HOST:PORT",
                        help=f"address to listen on (default {DEFAULT_BIND}; port 0 = any "
                        "free port)")
    parser.add_argument("--profile", type=profile_name, default=profiles.DEFAULT_PROFILE,
                        metavar="NAME",
                        help=f"profile to write for this server (default {profiles.DEFAULT_PROFILE})")
    parser.add_argument("--log-level", choices=LEVELS, default="info",
                        help="least severe log lines shown (default info: one line per request)")


def _url(host: str, port: int) -> str:
    """The URL clients use to reach a server bound to ``host``: a wildcard address is
    reached over loopback."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    return f"http://[{host}]:{port}" if is_v6 else f"http://{host}:{port}"


def _local_username() -> str:
    name = os.environ.get("USER", "")
    if not name or len(name) > 128 or any(c.isspace() for c in name):
        return "me"
    return name


def _lock_data_dir(data_dir: Path) -> int:
    fd = os.open(data_dir / "serve.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CliError(f"another 'vzcloud serve' is using {data_dir}; stop it or pick "
                       "another --data") from None
    return fd


def _first_run(cloud: CloudServer, data_dir: Path) -> None:
    from vzcloud.server import admin

    username = _local_username()
    _, password = admin.create_user(cloud, username)
    password_file = data_dir / "initial-password"
    profiles.write_private(password_file, (password + "\n").encode())
    sys.stderr.write(
        f"vzcloud: first run: created user {username!r} with password {password} "
        f"(saved in {password_file})\n"
    )


def _ensure_profile(cloud: CloudServer, name: str, url: str) -> None:
    """Make profile ``name`` usable against this server (see the module docstring)."""
    from vzcloud.server import admin, auth

    with profiles.locked(name):
        try:
            profile: profiles.Profile | None = profiles.load(name)
        except profiles.ProfileNotFoundError:
            profile = None
        registered = profile is not None and auth.registered_client(
            cloud.store, profile.client_id) is not None
        if profile is not None and not registered:
            host = urlsplit(profile.server).hostname or ""
            if host not in LOOPBACK_HOSTS and profile.server != url:
                raise CliError(
                    f"profile {name!r} is for another server ({profile.server}); pick another "
                    "--profile or delete that one", EXIT_FAILED)
        account_id = None
        if profile is not None and registered and profile.refresh_token:
            account_id = auth.refresh_token_account(
                cloud.store, profile.client_id, profile.refresh_token)
        if profile is not None and registered and account_id is not None:
            if profile.server != url:
                profile.server = url
                profiles.save(profile)
                log.info("profile %r now points to %s", name, url)
            return

        username = admin.first_username(cloud)
        assert username is not None  # the first run made one
        if profile is None or not registered:
            client = admin.create_client(cloud, admin.DEFAULT_REDIRECT_URI,
                                         name=f"vzcloud profile {name}")
            profile = profiles.Profile(name, url, client.client_id, client.client_secret,
                                       client.redirect_uri)
        token = admin.tokens_for(cloud, username, profile.client_id)
        profile.server = url
        profile.access_token = token.access_token
        profile.refresh_token = token.refresh_token
        profile.expires_at = time.time() + token.expires_in if token.expires_in else None
        path = profiles.save(profile)
    if not (profiles.config_dir() / "default-profile").exists():
        profiles.set_default(name)
    sys.stderr.write(f"vzcloud: wrote profile {name!r} for user {username!r} to {path}\n")


def run(args: argparse.Namespace) -> int:
    from vzcloud import logging_setup

    logging_setup.setup("debug" if args.debug else args.log_level)
    host, port = args.bind
    data_dir: Path = (args.data or default_data_dir()).expanduser().absolute()

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed first, so a signal during startup is a clean stop, not a kill.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CliError(f"cannot create the data directory {data_dir}: {exc.strerror}; pick "
                       "another --data") from None
    lock_fd = _lock_data_dir(data_dir)
    try:
        return _serve(args, data_dir, host, port, stop)
    finally:
        os.close(lock_fd)


def _serve(args: argparse.Namespace, data_dir: Path, host: str, port: int,
           stop: threading.Event) -> int:
    import sqlite3

    from vzcloud.server import admin
    from vzcloud.server.config import ServerConfig
    from vzcloud.server.runner import BackgroundServer

    # uvicorn's own lines (process started, shutting down) are noise unless debugging.
    uvicorn_level = "debug" if args.debug else "warning"
    try:
        server = BackgroundServer(ServerConfig(data_dir=data_dir), host, port,
                                  log_level=uvicorn_level, uvicorn_logging=False)
    except sqlite3.Error as exc:
        raise CliError(f"cannot open the cloud database in {data_dir}: {exc}") from None
    except OSError as exc:
        if exc.filename:
            raise
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
                       "--bind") from None
    try:
        server.start()
        if not admin.has_accounts(server.cloud):
            _first_run(server.cloud, data_dir)
        url = _url(host, server.sock.getsockname()[1])
        _ensure_profile(server.cloud, args.profile, url)
        sys.stderr.write(f"vzcloud: serving {url} (data {data_dir}, profile {args.profile})\n")
        sys.stderr.flush()
        notify(READY=1, STATUS=f"serving {url}")  # systemd Type=notify (vzcloud-serve.service)
        while not stop.wait(0.5):
            if not server.thread.is_alive():
                raise CliError("the server stopped unexpectedly; see the log above")
        log.info("stopping")
    finally:
        server.stop()
    sys.stderr.write("vzcloud: stopped\n")
    return EXIT_OK
