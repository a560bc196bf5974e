"""Helpers of the CLI tests (``test_cli_commands.py``, ``test_cli_login.py``).

- ``module_cloud(tmp_path_factory)``: an embedded cloud for a whole test module (a
  ``conftest.Cloud``, so ``new_user`` works), stopped at the end.
- ``CLI(env, cwd)``: runs the real entry point, ``python -m vzcloud.cli.main ARGS``, in a
  subprocess with ``env``; ``ok(...)`` asserts success and returns stdout, ``fails(code,
  ...)`` asserts the exit code and a one-line error without a traceback; ``expect_all``
  runs several independent cases ``(code, *args)`` side by side.
- ``cli_env(config_dir)``: the environment: a private ``VZCLOUD_CONFIG_DIR``, no browser
  ($DISPLAY, $WAYLAND_DISPLAY and $BROWSER removed), no $VZCLOUD_PROFILE, bytecode cached
  outside the tree (``PYCACHE``).
- ``save_profile(config_dir, name, cloud, access_token, refresh_token)``: a profile for a
  user of ``cloud``, written with ``vzcloud.profiles`` into that directory;
  ``load_profile(config_dir, name)`` reads one back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vzcloud import profiles
from vzcloud.server.admin import Client, create_client
from vzcloud.server.config import ServerConfig
from vzcloud.server.runner import BackgroundServer

from .conftest import Cloud

TIMEOUT = 60
PYCACHE = Path(tempfile.gettempdir()) / f"vzcloud-cli-tests-pycache-{os.getuid()}"
PARALLEL = 4  # subprocesses at once: most of each one's time is Python starting up


@contextmanager
def module_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    data = tmp_path_factory.mktemp("cloud")
    server = BackgroundServer(ServerConfig(data_dir=data)).start()
    client = create_client(server.cloud, redirect_uri="http://127.0.0.1:9/callback", name="tests")
    try:
        yield Cloud(server, client)
    finally:
        server.stop()


def cli_env(config_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "VZCLOUD_PROFILE",
                        "PYTHONDONTWRITEBYTECODE")}
    # Each subprocess would otherwise compile the package's modules anew when bytecode
    # writing is off (a third of its start-up); a private cache keeps the tree clean.
    env.update(VZCLOUD_CONFIG_DIR=str(config_dir), PYTHONUNBUFFERED="1",
               PYTHONPYCACHEPREFIX=str(PYCACHE), **extra)
    return env


@contextmanager
def config_dir_env(config_dir: Path) -> Iterator[None]:
    """``vzcloud.profiles`` of this process working in ``config_dir`` for a while."""
    before = os.environ.get("VZCLOUD_CONFIG_DIR")
    os.environ["VZCLOUD_CONFIG_DIR"] = str(config_dir)
    try:
        yield
    finally:
        if before is None:
            del os.environ["VZCLOUD_CONFIG_DIR"]
        else:
            os.environ["VZCLOUD_CONFIG_DIR"] = before


def save_profile(config_dir: Path, name: str, cloud: Cloud, access_token: str | None,
                 refresh_token: str | None, *, server: str | None = None,
                 client: Client | None = None, default: bool = True) -> None:
    """Profile ``name`` for ``cloud`` (or ``server``) with ``client`` (default: the
    cloud's test client) and these tokens; it becomes the default unless ``default``
    is False."""
    client = client or cloud.client
    with config_dir_env(config_dir):
        profiles.save(profiles.Profile(name, server or cloud.url, client.client_id,
                                       client.client_secret, client.redirect_uri,
                                       access_token, refresh_token))
        if default:
            profiles.set_default(name)


def load_profile(config_dir: Path, name: str) -> profiles.Profile:
    with config_dir_env(config_dir):
        return profiles.load(name)


def vzcloud_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "vzcloud.cli.main", *args]


@dataclass
class CLI:
    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(vzcloud_command(*args), env=self.env, cwd=self.cwd,
                              input=stdin if stdin is not None else "", capture_output=True,
                              text=True, timeout=TIMEOUT)

    def ok(self, *args: str) -> str:
        """Run; assert exit 0 and no traceback; return stdout."""
        return self.expect(0, *args)

    def fails(self, code: int, *args: str) -> str:
        """Run; assert exit ``code`` (not 0) with one line on stderr (``vzcloud...: error:
        ...``) and no traceback; return that line."""
        assert code != 0
        return self.expect(code, *args)

    def expect(self, code: int, *args: str) -> str:
        """``ok(*args)`` when ``code`` is 0, else ``fails(code, *args)``."""
        r = self(*args)
        assert r.returncode == code, f"vzcloud {' '.join(args)}: exit {r.returncode}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        if code == 0:
            return r.stdout
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("vzcloud") and ": error: " in lines[0], lines[0]
        return lines[0]

    def expect_all(self, *cases: tuple[Any, ...]) -> list[str]:
        """``expect(code, *args)`` for each case ``(code, *args)``, run side by side (so
        the cases must not depend on each other); their results, in order."""
        with ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(lambda case: self.expect(*case), cases))
