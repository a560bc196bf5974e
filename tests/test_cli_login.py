"""``vzcloud login``, ``logout`` and ``profiles`` through the real entry point, against one
embedded cloud per module. The browser is scripted (``cli_browser.sign_in``): it opens
the real sign-in page, submits the form and follows the redirect to the command's
loopback listener, as a person's browser would.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vzcloud.cli import EXIT_AUTH, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE
from vzcloud.server.admin import Client, create_client, tokens_for

from .cli_browser import sign_in
from .cli_helpers import CLI, cli_env, load_profile, module_cloud, save_profile, vzcloud_command
from .conftest import Cloud as CloudFixture
from .conftest import User


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudFixture]:
    with module_cloud(tmp_path_factory) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def app(server: CloudFixture) -> Client:
    """A client whose registered redirect URI is a free loopback port (the login listener)."""
    return create_client(server.server.cloud, f"http://127.0.0.1:{free_port()}/callback",
                         name="vzcloud CLI tests")


@pytest.fixture(scope="module")
def user(server: CloudFixture) -> Iterator[User]:
    u = server.new_user("carol")
    yield u
    u.http.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


def start_login(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``vzcloud login ARGS``; (process, the sign-in URL it printed, stderr so far),
    once it says it is waiting for the browser."""
    proc = subprocess.Popen(vzcloud_command("login", *args), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    fd = proc.stderr.fileno()  # raw reads: a buffered readline would hide lines from select
    seen = b""
    while b"waiting up to" not in seen:
        ready, _, _ = select.select([fd], [], [], 30)
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            proc.kill()
            raise AssertionError("vzcloud login did not start waiting:\n" + seen.decode())
        seen += chunk
    text = seen.decode()
    url = next(line for line in text.splitlines() if line.startswith("http"))
    return proc, url, text


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = proc.communicate(timeout=30)
    return out, err


def test_login_with_a_scripted_browser(server: CloudFixture, app: Client, user: User,
                                       config: Path) -> None:
    # The secret comes from the environment, so it is not in the process list; --debug
    # shows that not even the debug log carries a secret.
    env = cli_env(config, VZCLOUD_CLIENT_SECRET=app.client_secret)
    proc, url, before = start_login(env, "--server", server.url, "--client-id", app.client_id,
                                    "--redirect-uri", app.redirect_uri, "--profile", "work",
                                    "--no-browser", "--debug")
    assert url.startswith(server.api + "/oauth2/authorize?client_id=")
    assert "visit this address" in before and "opening" not in before

    # An answer that does not carry this login's state is refused; login keeps waiting.
    forged = httpx.get(app.redirect_uri, params={"code": "stolen", "state": "guessed"})
    assert forged.status_code == 400 and "does not belong" in forged.text
    assert httpx.get(app.redirect_uri.replace("/callback", "/favicon.ico")).status_code == 404
    answer = sign_in(url, user.username, user.password)
    assert answer.status_code == 200 and "You can close this window" in answer.text
    code = answer.request.url.params["code"]

    out, err = finish(proc)
    assert proc.returncode == 0, err
    path = config / "profiles" / "work.json"
    assert out == (f"signed in to {server.url} as account {user.user_id}; saved profile 'work' "
                   f"in {path} (it is the default profile)\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    profile = load_profile(config, "work")
    assert (profile.server, profile.client_id, profile.redirect_uri) == (
        server.url, app.client_id, app.redirect_uri)
    assert profile.access_token and profile.refresh_token and profile.expires_at
    everything_printed = before + out + err
    for secret in (profile.access_token, profile.refresh_token, app.client_secret, code):
        assert secret not in everything_printed
    assert "Traceback" not in everything_printed

    account, listed = CLI(env, config.parent).expect_all((0, "account"), (0, "profiles"))
    assert f"account {user.user_id}" in account  # the default profile now
    assert listed == f"* work  {server.url}  signed in\n"


def write_browser(tmp_path: Path) -> Path:
    """An executable for $BROWSER (webbrowser runs it with the URL): the scripted browser."""
    script = tmp_path / "browser"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" '
                      f'"{Path(__file__).parent / "cli_browser.py"}" "$@"\n')
    script.chmod(0o755)
    return script


def test_logout_then_login_again_through_the_browser_command(
    server: CloudFixture, app: Client, user: User, config: Path, tmp_path: Path,
) -> None:
    issued = tokens_for(server.server.cloud, user.username, app.client_id)
    save_profile(config, "work", server, issued.access_token, issued.refresh_token, client=app)
    env = cli_env(config, BROWSER=str(write_browser(tmp_path)),
                  TEST_BROWSER_USER=user.username, TEST_BROWSER_PASSWORD=user.password)
    cli = CLI(env, tmp_path)

    path = config / "profiles" / "work.json"
    assert cli.ok("logout") == (
        f"signed out: revoked the tokens at {server.url} and removed them from profile 'work' "
        f"({path}); 'vzcloud login --profile work' signs in again\n")
    old = httpx.get(server.api + "/account",
                    headers={"Authorization": f"Bearer {issued.access_token}"})
    assert old.status_code == 401
    profile = load_profile(config, "work")
    assert profile.access_token is None and profile.refresh_token is None
    assert profile.client_id == app.client_id  # kept for signing in again
    line, _ = cli.expect_all((EXIT_AUTH, "account"), (0, "logout"))  # again: nothing to revoke
    assert "profile 'work' is signed out; sign in with 'vzcloud login --profile work'" in line

    # The client comes from the profile; $BROWSER is opened and signs in by itself.
    r = cli("login", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert "opening it now" in r.stderr
    assert r.stdout.startswith(f"signed in to {server.url} as account {user.user_id}")
    assert f"account {user.user_id}" in cli.ok("account")

    assert cli.ok("logout", "--delete") == (
        f"signed out: revoked the tokens at {server.url} and deleted profile 'work'\n")
    assert not path.exists()
    listed, line = cli.expect_all((0, "profiles"), (EXIT_NOT_FOUND, "logout"))
    assert listed == ""  # and a note on stderr
    assert "no profile 'work'" in line


def test_login_refusals(server: CloudFixture, app: Client, user: User, config: Path,
                        tmp_path: Path) -> None:
    cli = CLI(cli_env(config), tmp_path)
    as_app = ("--server", server.url, "--client-id", app.client_id, "--client-secret",
              app.client_secret, "--redirect-uri", app.redirect_uri)
    no_client, no_secret, not_loopback, unknown, bad_server = cli.expect_all(
        (EXIT_USAGE, "login", "--profile", "fresh"),
        (EXIT_USAGE, "login", "--client-id", app.client_id),
        (EXIT_USAGE, "login", *as_app, "--redirect-uri", "https://example.org/cb"),
        (EXIT_AUTH, "login", "--server", server.url, "--client-id", "nobody",
         "--client-secret", "x", "--redirect-uri", app.redirect_uri),
        (EXIT_USAGE, "login", "--server", "ftp://example.org"))
    assert "pass --client-id and --client-secret" in no_client
    assert "--client-secret, or set $VZCLOUD_CLIENT_SECRET" in no_secret
    assert "not a loopback http address" in not_loopback
    assert "refuses this sign-in: unknown client_id 'nobody'; check --client-id" in unknown
    assert "--server" in bad_server

    port = int(app.redirect_uri.split(":")[2].split("/")[0])
    with socket.socket() as busy:
        # (SO_REUSEADDR: earlier logins' connections may linger in TIME_WAIT on the port.)
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        line = cli.fails(EXIT_FAILED, "login", *as_app)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    late = cli("login", *as_app, "--timeout", "1")  # the prompt, then the error
    assert late.returncode == EXIT_AUTH and "Traceback" not in late.stderr
    assert late.stderr.splitlines()[-1] == ("vzcloud: error: no sign-in arrived within 1 s; run "
                                            "'vzcloud login' again (--timeout gives more time)")

    proc, url, _ = start_login(cli.env, *as_app)
    page = sign_in(url, user.username, user.password, decision="deny")
    assert page.status_code == 200 and "access_denied" in page.text
    out, err = finish(proc)
    assert proc.returncode == EXIT_AUTH and out == ""
    assert err.strip().splitlines()[-1] == (
        "vzcloud: error: the sign-in did not grant access (access_denied); run 'vzcloud login' "
        "again and choose Allow")
    assert not (config / "profiles" / "work.json").exists()


def test_profiles(server: CloudFixture, user: User, config: Path, tmp_path: Path) -> None:
    save_profile(config, "home", server, user.access_token, user.refresh_token)
    save_profile(config, "spare", server, None, None, default=False)
    cli = CLI(cli_env(config), tmp_path)
    listed, missing, invalid = cli.expect_all(
        (0, "profiles"),
        (EXIT_NOT_FOUND, "profiles", "default", "nope"),
        (EXIT_USAGE, "profiles", "default", "not/a/name"))
    assert listed.splitlines() == [f"* home   {server.url}  signed in",
                                   f"  spare  {server.url}  signed out"]
    assert "no profile 'nope'" in missing
    assert "invalid profile name" in invalid
    assert cli.ok("profiles", "default", "spare") == "the default profile is now 'spare'\n"
    assert cli.ok("profiles", "list").splitlines()[1].startswith("* spare")


def test_logout_changes_nothing_when_the_server_is_unreachable(
    server: CloudFixture, user: User, config: Path, tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    save_profile(config, "gone", server, "access-secret", "refresh-secret", server=dead)
    line = CLI(cli_env(config), tmp_path).fails(EXIT_FAILED, "logout")
    assert f"cannot reach {dead} to revoke the tokens" in line and "nothing was changed" in line
    assert "refresh-secret" not in line
    assert load_profile(config, "gone").refresh_token == "refresh-secret"
