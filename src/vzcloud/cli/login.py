"""``vzcloud login``: sign in with a browser and save the credentials as a profile.

    vzcloud login [--server URL] [--client-id ID --client-secret SECRET]
                  [--redirect-uri URI] [--profile NAME] [--no-browser] [--timeout SECONDS]

The OAuth 2.0 authorization code flow: login listens on the loopback address and port of
the client's registered redirect URI (which must be a loopback http URL, like
http://127.0.0.1:8977/callback, because the cloud accepts only the exact registered URI),
opens the sign-in page in a browser when there is one ($BROWSER, $DISPLAY or
$WAYLAND_DISPLAY; --no-browser never does) and prints its address in any case. After
you sign in and allow access, the browser comes back to that address with a one-time
code; login checks that the answer belongs to this sign-in (the OAuth ``state``),
exchanges the code for tokens and saves the profile (mode 0600, written atomically).

Without --client-id the client of the existing profile is used (signing in again after
'vzcloud logout'). The client secret can come from $VZCLOUD_CLIENT_SECRET instead of
--client-secret, which keeps it out of the process list. Tokens are never printed.
The first profile saved becomes the default one.
"""

from __future__ import annotations

import argparse
import hmac
import html
import os
import secrets
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vzcloud import profiles
from vzcloud.cli import EXIT_AUTH, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, add_command
from vzcloud.cli._common import chosen_profile, describe, note, out, profile_option

DEFAULT_TIMEOUT = 300
SECRET_ENV = "VZCLOUD_CLIENT_SECRET"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _server_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a server URL like https://api.cloudapi.verizon.com or "
            "http://127.0.0.1:8976")
    return text.rstrip("/")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 1 to 86400")
    return value


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "login", run, help="sign in with a browser and save a profile",
                    description=__doc__, parents=[profile_option()])
    p.add_argument("--server", type=_server_url, metavar="URL",
                   help="the cloud (default: the profile's, else the Verizon cloud)")
    p.add_argument("--client-id", metavar="ID", help="the application's client id")
    p.add_argument("--client-secret", metavar="SECRET",
                   help=f"the application's client secret (or set ${SECRET_ENV})")
    p.add_argument("--redirect-uri", metavar="URI",
                   help="the client's registered redirect URI (default: the profile's, else "
                   "http://127.0.0.1:8977/callback, the one 'vzcloud serve' registers)")
    p.add_argument("--no-browser", action="store_true",
                   help="do not open a browser; only print the sign-in address")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"how long to wait for the browser (default {DEFAULT_TIMEOUT})")


# Which client, where ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Client:
    server: str
    client_id: str
    client_secret: str
    redirect_uri: str


def _choose_client(args: argparse.Namespace, name: str, existing: profiles.Profile | None) -> _Client:
    from vzcloud.api.endpoints import DEFAULT_SERVER
    from vzcloud.server.admin import DEFAULT_REDIRECT_URI

    server = args.server or (existing.server if existing else DEFAULT_SERVER)
    secret = args.client_secret or os.environ.get(SECRET_ENV) or None
    if args.client_id:
        if not secret:
            raise CliError(f"--client-id needs the client's secret: pass --client-secret, or set "
                           f"${SECRET_ENV}", EXIT_USAGE)
        same = existing is not None and existing.client_id == args.client_id
        redirect = args.redirect_uri or (existing.redirect_uri if same and existing else
                                         DEFAULT_REDIRECT_URI)
        return _Client(server, args.client_id, secret, redirect)
    if args.client_secret:
        raise CliError("--client-secret needs --client-id", EXIT_USAGE)
    if existing is None:
        raise CliError(f"no profile {name!r} to take the OAuth client from; pass --client-id and "
                       "--client-secret (an embedded cloud registers one with 'vzcloud admin "
                       "client add --redirect-uri http://127.0.0.1:PORT/callback')", EXIT_USAGE)
    return _Client(server, existing.client_id, existing.client_secret,
                   args.redirect_uri or existing.redirect_uri)


def _listen_address(redirect_uri: str) -> tuple[str, int, str]:
    """(host to bind, port, path) of a loopback http redirect URI; CliError otherwise."""
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port or 80
    except ValueError:
        port = -1
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK_HOSTS or port <= 0:
        raise CliError(f"the redirect URI {redirect_uri!r} is not a loopback http address, so "
                       "login cannot receive the browser's answer; use a client registered "
                       "with one like http://127.0.0.1:8977/callback (--redirect-uri)", EXIT_USAGE)
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    return host, port, parts.path or "/"


# The loopback listener -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    code: str | None
    error: str | None
    description: str | None


class _RedirectServer(HTTPServer):
    """Waits for the browser's GET of the redirect path carrying our ``state``."""

    def __init__(self, host: str, port: int, path: str, state: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _RedirectHandler)
        self.redirect_path = path
        self.state = state
        self.answer: _Answer | None = None
        self.arrived = threading.Event()

    def server_bind(self) -> None:
        # HTTPServer's own also looks up the host's DNS name, which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)


def _page(title: str, text: str) -> bytes:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
            "</body></html>").encode()


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _RedirectServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != self.server.redirect_path:
            self._reply(404, "Not found", "This address only receives the vzcloud sign-in.")
            return
        query = dict(parse_qsl(url.query))
        state = query.get("state", "")
        # A page the user did not start (another site, a stale tab) cannot know the state.
        if not hmac.compare_digest(state.encode(), self.server.state.encode()):
            self._reply(400, "Sign-in not accepted",
                        "This answer does not belong to the 'vzcloud login' waiting here (its "
                        "state does not match). Start the sign-in again from the terminal.")
            return
        if self.server.arrived.is_set():
            self._reply(400, "Already answered", "This sign-in has been answered already.")
            return
        if query.get("code"):
            self.server.answer = _Answer(query["code"], None, None)
            self._reply(200, "Signed in",
                        "vzcloud received the sign-in. You can close this window and return to "
                        "the terminal.")
        else:
            error = query.get("error") or "no_code"
            self.server.answer = _Answer(None, error, query.get("error_description"))
            self._reply(200, "Sign-in cancelled",
                        f"The cloud did not grant access ({error}). Return to the terminal.")
        self.server.arrived.set()

    def _reply(self, status: int, title: str, text: str) -> None:
        body = _page(title, text)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line carries the authorization code."""


# Steps ----------------------------------------------------------------------------------------


def _check_sign_in_page(url: str, client: _Client) -> None:
    """Ask the sign-in page (as JSON) whether it accepts this client and redirect URI, so
    a mistake shows here at once instead of as an error page in the browser."""
    import httpx

    from vzcloud.api.protocol import error_for_response
    from vzcloud.sdk.http import to_response

    try:
        resp = httpx.get(url, headers={"Accept": "application/json"}, timeout=30)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {client.server} ({type(exc).__name__}: {exc}); check "
                       "--server and the connection", EXIT_FAILED) from exc
    if resp.status_code < 400:
        return
    error = error_for_response(to_response(resp, resp.content))
    if resp.status_code == 400:
        raise CliError(f"{client.server} refuses this sign-in: {describe(error)}; "
                       "check --client-id and --redirect-uri (the client's registered "
                       "redirect URI)", EXIT_AUTH)
    raise CliError(f"the sign-in page of {client.server} answered HTTP {resp.status_code} "
                   f"({describe(error)}); check --server", EXIT_FAILED)


def _has_browser() -> bool:
    return any(os.environ.get(v) for v in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"))


def _open_browser(url: str) -> None:
    import webbrowser

    # In a thread of its own: some browser commands only return when the browser exits.
    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def _wait_for_answer(server: _RedirectServer, timeout: float) -> str:
    """The authorization code the browser brought back; CliError when refused or late."""
    if not server.arrived.wait(timeout):
        raise CliError(f"no sign-in arrived within {timeout:g} s; run 'vzcloud login' again "
                       "(--timeout gives more time)", EXIT_AUTH)
    answer = server.answer
    assert answer is not None
    if answer.code is None:
        detail = f": {answer.description}" if answer.description else ""
        raise CliError(f"the sign-in did not grant access ({answer.error}{detail}); run "
                       "'vzcloud login' again and choose Allow", EXIT_AUTH)
    return answer.code


def _exchange(client: _Client, code: str) -> tuple[Any, Any]:
    """(Token, Account) for the code."""
    from vzcloud.api import errors as E
    from vzcloud.sdk import Cloud

    try:
        with Cloud(client.client_id, client.client_secret, client.redirect_uri,
                   base_url=client.server) as cloud:
            token = cloud.token(code)
            return token, cloud.account()
    except E.UnauthorizedError as exc:
        if exc.error == "invalid_client":
            raise CliError(f"{client.server} refused the client's credentials "
                           f"({describe(exc)}); check --client-id and "
                           "--client-secret", EXIT_AUTH) from exc
        raise CliError(f"{client.server} refused the sign-in code ({describe(exc)});"
                       " run 'vzcloud login' again", EXIT_AUTH) from exc
    except E.NetworkError as exc:
        raise CliError(f"cannot reach {client.server} ({exc.description}); check the "
                       "connection and run 'vzcloud login' again", EXIT_FAILED) from exc
    except E.CloudError as exc:
        raise CliError(f"{client.server} failed to finish the sign-in ({describe(exc)}); run "
                       "'vzcloud login' again", EXIT_FAILED) from exc


def run(args: argparse.Namespace) -> int:
    from vzcloud import logging_setup
    from vzcloud.api.protocol import authorize_url

    logging_setup.setup("debug" if args.debug else "warning")
    name = chosen_profile(args)
    try:
        existing: profiles.Profile | None = profiles.load(name)
    except profiles.ProfileNotFoundError:
        existing = None
    client = _choose_client(args, name, existing)
    host, port, path = _listen_address(client.redirect_uri)
    state = secrets.token_urlsafe(32)
    url = authorize_url(client.server, client.client_id, client.redirect_uri, state)
    _check_sign_in_page(url, client)

    try:
        listener = _RedirectServer(host, port, path, state)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port} for the browser's answer ({exc.strerror}); "
                       "stop what uses that port (a 'vzcloud serve' there?) or use a client "
                       "registered with another redirect URI", EXIT_FAILED) from None
    thread = threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True)
    thread.start()
    try:
        browser = _has_browser() and not args.no_browser
        note(f"sign in to {client.server} in a browser"
             + (" (opening it now; if it does not open, visit this address):" if browser
                else "; visit this address:"))
        sys.stderr.write(url + "\n")
        note(f"waiting up to {args.timeout:g} s for the browser to come back to "
             f"{client.redirect_uri} (Ctrl-C cancels)")
        sys.stderr.flush()
        if browser:
            _open_browser(url)
        code = _wait_for_answer(listener, args.timeout)
    finally:
        listener.shutdown()
        listener.server_close()
    token, account = _exchange(client, code)

    with profiles.locked(name):
        saved = profiles.save(profiles.Profile(
            name, client.server, client.client_id, client.client_secret, client.redirect_uri,
            token.access_token, token.refresh_token,
            time.time() + token.expires_in if token.expires_in else None))
    # As 'vzcloud serve' does: the first profile written becomes the default.
    first = not (profiles.config_dir() / "default-profile").exists()
    if first:
        profiles.set_default(name)
    usage = ("it is the default profile" if first or profiles.default_name() == name
             else f"use it with --profile {name}, or 'vzcloud profiles default {name}'")
    out(f"signed in to {client.server} as account {account.id}; saved profile {name!r} in "
        f"{saved} ({usage})")
    return EXIT_OK
