"""Shared fixtures: a real embedded cloud on a loopback port, users, clients, tokens."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from vzcloud.api.endpoints import BASE_PATH
from vzcloud.server.admin import Client, create_client, create_user, tokens_for
from vzcloud.server.config import ServerConfig
from vzcloud.server.runner import BackgroundServer

from .mount_harness import CloudEnv, start_cloud, stop_cloud


@dataclass
class User:
    username: str
    password: str
    user_id: str
    access_token: str
    refresh_token: str
    client: Client
    http: httpx.Client  # authenticated, base URL = the API base (…/cloud/1)


@dataclass
class Cloud:
    server: BackgroundServer
    client: Client

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api(self) -> str:
        return self.server.url + BASE_PATH

    def new_user(self, username: str, quota: int | None = None) -> User:
        account, password = create_user(self.server.cloud, username, quota=quota)
        token = tokens_for(self.server.cloud, username, self.client.client_id)
        http = httpx.Client(
            base_url=self.api,
            headers={"Authorization": f"Bearer {token.access_token}"},
            timeout=30,
        )
        return User(username, password, account.user_id, token.access_token,
                    token.refresh_token or "", self.client, http)


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """Small limits so tests can reach them; override fields in a test as needed."""
    return ServerConfig(data_dir=tmp_path / "cloud")


@pytest.fixture
def cloud(server_config: ServerConfig) -> Iterator[Cloud]:
    server = BackgroundServer(server_config).start()
    client = create_client(server.cloud, redirect_uri="http://127.0.0.1:9/callback", name="tests")
    try:
        yield Cloud(server, client)
    finally:
        server.stop()


@pytest.fixture
def user(cloud: Cloud) -> Iterator[User]:
    u = cloud.new_user("alice")
    yield u
    u.http.close()


@pytest.fixture
def other_user(cloud: Cloud) -> Iterator[User]:
    u = cloud.new_user("mallory")
    yield u
    u.http.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudEnv]:
    """One embedded cloud for a whole mount test module (see tests/mount_harness.py);
    a module that needs another kind defines its own ``env``."""
    e = start_cloud(tmp_path_factory.mktemp("cloud"))
    try:
        yield e
    finally:
        stop_cloud(e)


@pytest.fixture
def faults_off(env: CloudEnv) -> Iterator[None]:
    """Whatever a test arms in ``env``'s fault injection is switched off after it, even
    when it fails."""
    try:
        yield
    finally:
        env.faults.clear()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped test is a failure: mount tests must never skip silently."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI: {skipped} test(s) skipped; skips count as failures", red=True)
