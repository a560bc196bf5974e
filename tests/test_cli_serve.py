"""The ``vzcloud`` command, run for real in subprocesses: serve, profiles, admin, errors."""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from vzcloud.server.store import Store

CONSOLE_SCRIPT = Path(sys.executable).parent / "vzcloud"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private world for the command: config, data and home under tmp_path."""
    return {
        **os.environ,
        "VZCLOUD_CONFIG_DIR": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "HOME": str(tmp_path / "home"),
        "USER": "tester",
        "PYTHONUNBUFFERED": "1",
    }


def vzcloud(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vzcloud.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


@dataclass
class Serving:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        _, rest = self.proc.communicate(timeout=20)
        self.lines.extend(rest.splitlines())
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


def start_serve(env: dict[str, str], *args: str) -> Serving:
    """Run ``vzcloud serve --bind 127.0.0.1:0 ARGS`` until its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vzcloud.cli.main", "serve", "--bind", "127.0.0.1:0", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    fd = proc.stderr.fileno()  # raw reads: a buffered readline would hide lines from select
    received = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            break
        received += chunk
        lines = received.decode().splitlines()
        for line in lines:
            if line.startswith("vzcloud: serving ") and received.endswith(b"\n"):
                return Serving(proc, line.split()[2], lines)
    proc.kill()
    proc.wait()
    raise AssertionError("vzcloud serve did not get ready:\n" + received.decode())


@pytest.fixture
def serving() -> Iterator[list[Serving]]:
    """Servers a test started; any still running at the end are killed."""
    started: list[Serving] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def read_profile(env: dict[str, str], name: str = "local") -> dict:
    return json.loads((Path(env["VZCLOUD_CONFIG_DIR"]) / "profiles" / f"{name}.json").read_text())


def account(url: str, token: str) -> httpx.Response:
    return httpx.get(url + "/cloud/1/account", headers={"Authorization": f"Bearer {token}"})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_writes_a_working_profile(env: dict[str, str], serving: list[Serving]) -> None:
    s = start_serve(env)
    serving.append(s)
    data = Path(env["XDG_DATA_HOME"]) / "vzcloud" / "cloud"
    assert s.lines[-1] == f"vzcloud: serving {s.url} (data {data}, profile local)"
    assert s.url.startswith("http://127.0.0.1:") and not s.url.endswith(":0")

    password_line = next(line for line in s.lines if "first run" in line)
    assert "user 'tester'" in password_line
    password_file = data / "initial-password"
    assert mode(password_file) == 0o600
    assert password_file.read_text().strip() in password_line

    config = Path(env["VZCLOUD_CONFIG_DIR"])
    profile_file = config / "profiles" / "local.json"
    assert mode(profile_file) == 0o600
    assert mode(config) == 0o700 and mode(config / "profiles") == 0o700
    assert (config / "default-profile").read_text().strip() == "local"
    profile = read_profile(env)
    assert profile["server"] == s.url
    assert profile["redirect_uri"] == "http://127.0.0.1:8977/callback"
    assert profile["client_secret"] and profile["refresh_token"] and profile["expires_at"]
    r = account(s.url, profile["access_token"])
    assert r.status_code == 200, r.text

    # The profile's client and refresh token work at the token endpoint, too.
    r = httpx.post(s.url + "/cloud/1/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": profile["refresh_token"],
        "client_id": profile["client_id"], "client_secret": profile["client_secret"]})
    assert r.status_code == 200, r.text

    # The token reaches the log only redacted.
    httpx.get(s.url + "/cloud/1/files/VZMOBILE/x",
              params={"access-token": profile["access_token"]})
    assert s.stop() == 0
    assert "access-token=***" in s.stderr
    assert profile["access_token"] not in s.stderr
    assert "Traceback" not in s.stderr
    assert s.lines[-1] == "vzcloud: stopped"


def test_later_runs_keep_data_and_refresh_the_profile(
    env: dict[str, str], serving: list[Serving], tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    s = start_serve(env, "--data", str(data))
    serving.append(s)
    first = read_profile(env)
    user_id = account(s.url, first["access_token"]).json()["id"]
    assert s.stop(signal.SIGINT) == 0

    s = start_serve(env, "--data", str(data))
    serving.append(s)
    assert not any("first run" in line for line in s.lines)
    second = read_profile(env)
    assert second["server"] == s.url
    assert second["access_token"] == first["access_token"]  # still good: kept
    assert account(s.url, second["access_token"]).json()["id"] == user_id
    assert s.stop() == 0

    # A missing profile gets a client of its own and fresh tokens for the same user.
    (Path(env["VZCLOUD_CONFIG_DIR"]) / "profiles" / "local.json").unlink()
    s = start_serve(env, "--data", str(data))
    serving.append(s)
    third = read_profile(env)
    assert third["access_token"] != first["access_token"]
    assert third["client_id"] != first["client_id"]
    assert account(s.url, third["access_token"]).json()["id"] == user_id

    # Another profile name next to it; the default stays.
    other = start_serve(env, "--data", str(tmp_path / "data2"), "--profile", "second")
    serving.append(other)
    assert read_profile(env, "second")["server"] == other.url
    assert (Path(env["VZCLOUD_CONFIG_DIR"]) / "default-profile").read_text().strip() == "local"
    assert other.stop() == 0
    assert s.stop() == 0


def test_spent_profile_tokens_are_replaced(
    env: dict[str, str], serving: list[Serving], tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    s = start_serve(env, "--data", str(data))
    serving.append(s)
    profile = read_profile(env)
    # Spend the profile's refresh token behind its back (as a crashed client would).
    r = httpx.post(s.url + "/cloud/1/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": profile["refresh_token"],
        "client_id": profile["client_id"], "client_secret": profile["client_secret"]})
    assert r.status_code == 200
    assert s.stop() == 0
    s = start_serve(env, "--data", str(data))
    serving.append(s)
    fresh = read_profile(env)
    assert fresh["refresh_token"] != profile["refresh_token"]
    assert fresh["client_id"] == profile["client_id"]
    assert account(s.url, fresh["access_token"]).status_code == 200
    assert s.stop() == 0


def test_one_server_per_data_dir_and_busy_ports(
    env: dict[str, str], serving: list[Serving], tmp_path: Path,
) -> None:
    s = start_serve(env, "--data", str(tmp_path / "data"))
    serving.append(s)
    r = vzcloud(env, "serve", "--data", str(tmp_path / "data"), "--bind", "127.0.0.1:0")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"vzcloud: error: another 'vzcloud serve' is using {tmp_path / 'data'}; "
        "stop it or pick another --data"]
    port = s.url.rsplit(":", 1)[1]
    r = vzcloud(env, "serve", "--data", str(tmp_path / "other"), "--bind", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "cannot listen on 127.0.0.1:" in r.stderr and "choose another --bind" in r.stderr
    assert s.stop() == 0


@pytest.mark.parametrize("bind", ["nope", "127.0.0.1", "127.0.0.1:99999", ":8976", "h:-1"])
def test_bad_bind_is_a_one_line_usage_error(env: dict[str, str], bind: str) -> None:
    r = vzcloud(env, "serve", "--bind", bind)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--bind" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_help_usage_and_debug(env: dict[str, str], tmp_path: Path) -> None:
    for args in ([], ["admin"], ["admin", "user"]):
        r = vzcloud(env, *args)
        assert r.returncode == 2 and "usage:" in r.stderr
    for args in (["--help"], ["serve", "--help"], ["admin", "--help"],
                 ["admin", "user", "add", "--help"], ["admin", "client", "add", "--help"],
                 ["admin", "token", "--help"]):
        r = vzcloud(env, *args)
        assert r.returncode == 0 and "usage:" in r.stdout, args
    r = subprocess.run([str(CONSOLE_SCRIPT), "--help"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "Exit codes" in r.stdout
    r = vzcloud(env, "serve", "--no-such-option")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1

    missing = str(tmp_path / "missing")
    r = vzcloud(env, "admin", "--data", missing, "token", "x", "--client", "y")
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"vzcloud: error: no embedded cloud in {missing}; pass the right --data, or create "
        f"one with 'vzcloud serve --data {missing}'"]
    r = vzcloud(env, "--debug", "admin", "--data", missing, "token", "x", "--client", "y")
    assert r.returncode == 4 and "Traceback" in r.stderr


def test_admin_commands_on_a_running_server(
    env: dict[str, str], serving: list[Serving], tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    s = start_serve(env, "--data", data)
    serving.append(s)

    r = vzcloud(env, "admin", "--data", data, "user", "add", "bob", "--quota", "1G")
    assert r.returncode == 0, r.stderr
    bob = json.loads(r.stdout)
    assert bob["username"] == "bob" and bob["quota"] == 1 << 30 and bob["password"]
    r = vzcloud(env, "admin", "user", "add", "bob", "--data", data)  # --data after, too
    assert r.returncode == 1 and "exists already" in r.stderr
    r = vzcloud(env, "admin", "--data", data, "user", "add", "carol", "--password-stdin",
                stdin="correct horse\n")
    assert r.returncode == 0 and "password" not in json.loads(r.stdout)
    r = vzcloud(env, "admin", "--data", data, "user", "add", "dave", "--password-stdin")
    assert r.returncode == 2 and "stdin is empty" in r.stderr
    r = vzcloud(env, "admin", "--data", data, "user", "add", "erin", "--quota", "lots")
    assert r.returncode == 2

    r = vzcloud(env, "admin", "--data", data, "client", "add",
                "--redirect-uri", "http://127.0.0.1:5000/cb", "--name", "My app")
    assert r.returncode == 0, r.stderr
    client = json.loads(r.stdout)
    assert client["client_id"] and client["client_secret"]
    assert client["redirect_uri"] == "http://127.0.0.1:5000/cb"
    r = vzcloud(env, "admin", "--data", data, "client", "add", "--redirect-uri", "no uri#x")
    assert r.returncode == 1 and "invalid redirect URI" in r.stderr

    r = vzcloud(env, "admin", "--data", data, "token", "bob", "--client", client["client_id"])
    assert r.returncode == 0, r.stderr
    tokens = json.loads(r.stdout)
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    me = account(s.url, tokens["access_token"])
    assert me.status_code == 200 and me.json()["id"] == bob["user_id"]
    assert me.json()["usage"]["quota"] == 1 << 30
    r = vzcloud(env, "admin", "--data", data, "token", "nobody", "--client", client["client_id"])
    assert r.returncode == 4 and "no user 'nobody'" in r.stderr
    r = vzcloud(env, "admin", "--data", data, "token", "bob", "--client", "nope")
    assert r.returncode == 4

    # carol's password from stdin signs in on the real page.
    with httpx.Client(base_url=s.url + "/cloud/1") as browser:
        query = {"client_id": client["client_id"], "redirect_uri": client["redirect_uri"],
                 "response_type": "code"}
        page = browser.get("/oauth2/authorize", params=query)
        assert "My app" in page.text
        csrf = browser.cookies["vzcloud_csrf"]
        r = browser.post("/oauth2/authorize", data={
            **query, "csrf": csrf, "username": "carol", "password": "correct horse",
            "decision": "allow"})
        assert r.status_code == 302 and "code=" in r.headers["location"]
    assert s.stop() == 0


def test_admin_on_a_stopped_cloud(env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Store(data / "cloud.db").close()
    r = vzcloud(env, "admin", "--data", str(data), "user", "add", "zed")
    assert r.returncode == 0, r.stderr
    # The default data dir is serve's: $XDG_DATA_HOME/vzcloud/cloud.
    r = vzcloud(env, "admin", "user", "add", "zed")
    assert r.returncode == 4
    assert str(Path(env["XDG_DATA_HOME"]) / "vzcloud" / "cloud") in r.stderr


def test_port_zero_on_all_interfaces_prints_a_reachable_url(
    env: dict[str, str], serving: list[Serving], tmp_path: Path,
) -> None:
    s = start_serve(env, "--data", str(tmp_path / "d"), "--bind", "0.0.0.0:0")
    serving.append(s)
    assert s.url.startswith("http://127.0.0.1:")
    profile = read_profile(env)
    assert account(s.url, profile["access_token"]).status_code == 200
    assert s.stop() == 0
