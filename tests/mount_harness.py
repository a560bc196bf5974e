"""Real FUSE mounts for tests: ``vzcloud mount --foreground`` in a subprocess.

- ``CloudEnv`` / ``start_cloud(tmp)``: an embedded cloud in this process (a
  BackgroundServer thread), with an OAuth client, a user and a synchronous SDK client
  (``env.sdk``) to check what reached the cloud.
- ``mounted(env, tmp, ...)``: writes a profile for the user into a tmp
  ``VZCLOUD_CONFIG_DIR``, starts ``python -m vzcloud.cli.main mount MP --foreground``,
  polls ``os.path.ismount`` (0.1 s steps, 30 s at most; fails at once, with the mount's
  stderr, if the process died), yields a ``Mount``; then ``fusermount3 -u``, asserts the
  directory is no longer a mount and that the process exited 0. If anything goes wrong
  the teardown falls back to ``fusermount3 -u -z`` and kill, so no test leaves a mount.
- ``start_mount(env, name)`` / ``kill_mount(mount)``: the same without the context
  manager, for tests that crash the mount (SIGKILL, then ``fusermount3 -u -z``) and
  mount the same cache directory again.
- ``require_fuse()``: mount tests never skip; without /dev/fuse or fusermount3 they fail
  with a clear message.

Every mount test must carry a timeout (``MOUNT_TIMEOUT``): a hung filesystem hangs the
syscall of the test, which only the thread method of pytest-timeout can break.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vzcloud import Cloud, profiles
from vzcloud.api.errors import CloudError, NotFoundError
from vzcloud.bench.measure import wait_until
from vzcloud.server.admin import Client, create_client, create_user, tokens_for
from vzcloud.server.config import ServerConfig
from vzcloud.server.faults import Faults
from vzcloud.server.runner import BackgroundServer

MOUNT_TIMEOUT = pytest.mark.timeout(90, method="thread")
PROFILE = "mounttest"
USERNAME = "mounter"


def require_fuse() -> None:
    missing = [what for what, ok in (("/dev/fuse", os.path.exists("/dev/fuse")),
                                     ("fusermount3", shutil.which("fusermount3") is not None))
               if not ok]
    if missing:
        pytest.fail(f"FUSE is not usable here ({' and '.join(missing)} missing): mount tests "
                    "need it and never skip", pytrace=False)


@dataclass
class CloudEnv:
    tmp: Path
    server: BackgroundServer
    client: Client
    sdk: Cloud
    host: str = ""
    port: int = 0

    @property
    def faults(self) -> Faults:
        """The running server's fault injector."""
        return self.server.cloud.faults

    def stop_server(self) -> None:
        self.server.stop()

    def start_server(self) -> None:
        """A new server on the same data directory and port (after ``stop_server``)."""
        self.server = BackgroundServer(self.server.cloud.config, self.host, self.port).start()

    def cloud_bytes(self, path: str) -> bytes:
        buf = io.BytesIO()
        self.sdk.download(path, buf)
        return buf.getvalue()

    def wait_cloud_bytes(self, path: str, expected: bytes, timeout: float = 20) -> None:
        """Until the cloud holds exactly ``expected`` at ``path`` (uploads are write-back)."""
        deadline = time.monotonic() + timeout
        got: bytes | None = None
        while time.monotonic() < deadline:
            try:
                got = self.cloud_bytes(path)
            except NotFoundError:
                got = None
            except CloudError as exc:
                # Replaced by a new upload while downloading (the whole body no longer
                # matches, or a resumed range lies past the new version's end): look again.
                if exc.error not in ("checksum_mismatch", "range_not_satisfiable"):
                    raise
                got = None
            if got == expected:
                return
            time.sleep(0.1)
        shown = None if got is None else (got[:60], len(got))
        raise AssertionError(f"{path} in the cloud is {shown}, not the expected "
                             f"{len(expected)} bytes after {timeout} s")


def start_cloud(tmp: Path) -> CloudEnv:
    server = BackgroundServer(ServerConfig(data_dir=tmp / "cloud")).start()
    client = create_client(server.cloud, redirect_uri="http://127.0.0.1:9/callback",
                           name="mount tests")
    create_user(server.cloud, USERNAME)
    token = tokens_for(server.cloud, USERNAME, client.client_id)
    sdk = Cloud(client.client_id, client.client_secret, client.redirect_uri,
                token.access_token, token.refresh_token, base_url=server.url)
    host, port = server.sock.getsockname()[:2]
    return CloudEnv(tmp, server, client, sdk, host, port)


def stop_cloud(env: CloudEnv) -> None:
    env.sdk.close()
    env.server.stop()


@dataclass
class Mount:
    path: Path
    proc: subprocess.Popen[bytes]
    env: CloudEnv
    cache_dir: Path
    stderr_path: Path
    process_env: dict[str, str] = field(default_factory=dict)

    def vz(self, *parts: str) -> Path:
        return self.path.joinpath("VZMOBILE", *parts)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def sync_now(self) -> None:
        """Ask the mount to poll the cloud for changes at once (SIGHUP)."""
        self.proc.send_signal(signal.SIGHUP)

    def vzcloud(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the ``vzcloud`` command with the mount's environment."""
        return subprocess.run([sys.executable, "-m", "vzcloud.cli.main", *args],
                              env=self.process_env, capture_output=True, text=True,
                              timeout=timeout)


def write_profile(config_dir: Path, env: CloudEnv, name: str = PROFILE,
                  server: str | None = None) -> None:
    """A profile (the default one) with fresh tokens of the test user; ``server``
    overrides the URL (e.g. to point at nothing)."""
    token = tokens_for(env.server.cloud, USERNAME, env.client.client_id)
    saved = os.environ.get("VZCLOUD_CONFIG_DIR")
    os.environ["VZCLOUD_CONFIG_DIR"] = str(config_dir)
    try:
        profiles.save(profiles.Profile(
            name, server or env.server.url, env.client.client_id, env.client.client_secret,
            env.client.redirect_uri, token.access_token, token.refresh_token))
        profiles.set_default(name)
    finally:
        if saved is None:
            del os.environ["VZCLOUD_CONFIG_DIR"]
        else:
            os.environ["VZCLOUD_CONFIG_DIR"] = saved


def _is_mount(path: Path) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return True


def start_mount(env: CloudEnv, name: str = "mnt", *, args: tuple[str, ...] = (),
                extra_env: dict[str, str] | None = None) -> Mount:
    """Start ``vzcloud mount --foreground`` on ``TMP/name/mnt`` (cache ``TMP/name/cache``)
    and return once it is mounted; the caller unmounts it (``mounted`` does). Starting
    the same ``name`` again reuses the cache directory (a remount)."""
    require_fuse()
    base = env.tmp / name
    mountpoint, cache_dir, config_dir = base / "mnt", base / "cache", base / "config"
    mountpoint.mkdir(parents=True, exist_ok=True)
    write_profile(config_dir, env)
    process_env = {**os.environ, "VZCLOUD_CONFIG_DIR": str(config_dir),
                   "XDG_RUNTIME_DIR": str(base), "XDG_CACHE_HOME": str(base / "xdg-cache"),
                   **(extra_env or {})}
    stderr_path = base / "mount.stderr"
    with open(stderr_path, "ab") as err:  # a remount appends to the same log
        proc = subprocess.Popen(
            [sys.executable, "-m", "vzcloud.cli.main", "mount", str(mountpoint),
             "--foreground", "--cache-dir", str(cache_dir), "--poll-interval", "2", *args],
            env=process_env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    mount = Mount(mountpoint, proc, env, cache_dir, stderr_path, process_env)
    try:
        if not wait_until(lambda: _is_mount(mountpoint) or proc.poll() is not None, 30, 0.1):
            pytest.fail(f"not mounted after 30 s; mount stderr:\n{mount.stderr()}")
        if proc.poll() is not None:
            pytest.fail(f"the mount process exited with {proc.returncode}:\n{mount.stderr()}")
    except BaseException:
        kill_mount(mount)
        raise
    return mount


def kill_mount(mount: Mount) -> None:
    """SIGKILL the mount process (if alive) and detach what it leaves (a crash)."""
    if mount.proc.poll() is None:
        mount.proc.kill()
        mount.proc.wait(timeout=10)
    subprocess.run(["fusermount3", "-u", "-z", str(mount.path)], capture_output=True)


@contextmanager
def mounted(env: CloudEnv, name: str = "mnt", *, args: tuple[str, ...] = (),
            extra_env: dict[str, str] | None = None) -> Iterator[Mount]:
    mount = start_mount(env, name, args=args, extra_env=extra_env)
    mountpoint, proc = mount.path, mount.proc
    clean = False
    try:
        yield mount
        if _is_mount(mountpoint):
            done = subprocess.run(["fusermount3", "-u", str(mountpoint)],
                                  capture_output=True, text=True)
            assert done.returncode == 0, f"fusermount3 -u failed: {done.stderr}"
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the mount process did not exit after unmount:\n{mount.stderr()}")
        assert not _is_mount(mountpoint), "still mounted after fusermount3 -u"
        assert code == 0, f"the mount process exited with {code}:\n{mount.stderr()}"
        clean = True
    finally:
        if not clean:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
            kill_mount(mount)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
