"""The systems under test, behind one interface (``System``), and what runs them.

- ``VzCloud``: the embedded cloud (``EmbeddedCloud``, a child process) with two
  ``vzcloud mount --foreground`` processes, one per account (``main`` and ``tree``, see
  ``dataset``), each with its own cache directory.
- ``Rclone``: ``rclone serve webdav`` of the local data directory on loopback, and one
  ``rclone mount --vfs-cache-mode full`` of it (rclone's defaults otherwise, e.g. its
  5 s ``--vfs-write-back``), holding both ``main`` and ``tree``.
- ``Local``: the local data directory itself.

"Cold" (``System.cold``) means a new mount process with its content caches empty:
vzcloud's block cache directory is deleted (its metadata cache is kept: the mount loads
every listing at mount time anyway, and ``mount`` measures that load separately);
rclone's whole cache directory is deleted (its directory cache lives in memory). The
caller drops the kernel's caches afterwards.

"Stored" (``System.wait_stored``) means in the cloud, checked every ``STORED_STEP``: for
vzcloud, listed by the cloud with the expected size and sha256 (one fullview delta per
step through the SDK: its cost follows the changes since the last step); for rclone,
present in the served directory with the expected size (a local ``stat`` per pending
file: no load on its server); for the local directory, on disk (``sync``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from vzcloud import Cloud, profiles
from vzcloud.api import paths as P
from vzcloud.api.errors import CloudError, OutOfSyncError
from vzcloud.api.models import CloudFile, CloudFolder, Token
from vzcloud.bench.dataset import MAIN_CLOUD_DIR, TREE_CLOUD_DIR, CloudCredentials, Expected
from vzcloud.bench.measure import wait_until

MOUNT_STEP = 0.002  # seconds between mount checks: the remount figure depends on it
STORED_STEP = 0.1  # seconds between "is it in the cloud yet" polls


class BenchError(Exception):
    """A system could not be started or stopped (the message says why)."""


def _is_mount(path: Path) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return True  # a dead mount still needs unmounting


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _unmount(mountpoint: Path, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Unmount and wait for the serving process to exit (a vzcloud mount drains its
    upload queue first); lazily and by force if that fails."""
    if _is_mount(mountpoint):
        for _ in range(20):
            done = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
            if done.returncode == 0 or not _is_mount(mountpoint):
                break
            time.sleep(0.25)  # busy: a process of ours may still be closing a file
        else:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
    if proc is not None and proc.poll() is None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class System:
    """One system under test. ``main`` and ``tree`` are where the data set's two parts
    are (see ``dataset``)."""

    name = ""
    main: Path
    tree: Path
    can_remount = False

    def pid(self, part: str) -> int | None:
        """The process serving ``part`` (``main`` or ``tree``), if any."""
        return None

    def server_pid(self) -> int | None:
        """The process behind the mount (the cloud, the webdav server), if any."""
        return None

    def cold(self, part: str) -> None:
        """Restart what serves ``part`` with its content caches empty (see the module
        docstring)."""

    def stop(self, part: str) -> None: ...

    def clear_cache(self, part: str, everything: bool) -> None:
        """While stopped: empty the content cache (``everything``: all cached state)."""

    def start(self, part: str) -> None:
        """Start serving ``part``; returns once mounted."""

    def wait_stored(self, files: dict[str, Expected], timeout: float) -> bool:
        """Until every file (path relative to ``main``) is stored; False on timeout."""
        return True

    def close(self) -> None: ...


class Local(System):
    name = "local"

    def __init__(self, main: Path, tree: Path) -> None:
        self.main, self.tree = main, tree

    def wait_stored(self, files: dict[str, Expected], timeout: float) -> bool:
        os.sync()  # stored = on disk
        return True


# vzcloud ---------------------------------------------------------------------------------


class EmbeddedCloud:
    """``python -m vzcloud.bench serve DATA_DIR``: the embedded cloud in a child process
    (so its CPU use is its own), on a free loopback port."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vzcloud.bench", "serve", str(data_dir)],
                stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise BenchError(f"the embedded cloud did not start:\n{_tail(log)}")
        info = json.loads(line)
        self.url: str = info["url"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class VzMount:
    """One ``vzcloud mount --foreground`` process (started and stopped repeatedly)."""

    def __init__(self, profile: str, mountpoint: Path, cache_dir: Path, log: Path,
                 env: dict[str, str]) -> None:
        self.profile, self.mountpoint, self.cache_dir, self.log = profile, mountpoint, \
            cache_dir, log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        mountpoint.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vzcloud.cli.main", "mount", str(self.mountpoint),
                 "--foreground", "--profile", self.profile, "--cache-dir", str(self.cache_dir)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        proc = self.proc
        if not wait_until(lambda: _is_mount(self.mountpoint) or proc.poll() is not None,
                          120, MOUNT_STEP) or proc.poll() is not None:
            raise BenchError(f"vzcloud mount of {self.profile} failed:\n{_tail(self.log)}")

    def stop(self) -> None:
        _unmount(self.mountpoint, self.proc, timeout=900)
        self.proc = None


def write_profile(config_dir: Path, name: str, url: str, creds: CloudCredentials,
                  token: Token) -> None:
    saved = os.environ.get("VZCLOUD_CONFIG_DIR")
    os.environ["VZCLOUD_CONFIG_DIR"] = str(config_dir)
    try:
        c = creds.client
        profiles.save(profiles.Profile(name, url, c.client_id, c.client_secret,
                                       c.redirect_uri, token.access_token,
                                       token.refresh_token))
    finally:
        if saved is None:
            del os.environ["VZCLOUD_CONFIG_DIR"]
        else:
            os.environ["VZCLOUD_CONFIG_DIR"] = saved


class _StoredView:
    """What the cloud holds at the paths being waited for (``path -> (size, sha256)``),
    kept current with fullview deltas from an etag taken before any workload ran, so a
    file stored before the wait began is seen as well as one stored during it. The
    truth as of the etag the cloud answered with: never sooner than the cloud lists it.
    An etag the change log no longer reaches (OutOfSyncError) is renewed by a whole
    fullview (streamed; only the watched paths are kept)."""

    def __init__(self, sdk: Cloud) -> None:
        self.sdk = sdk
        self.watched: set[str] = set()
        self.have: dict[str, tuple[int, str | None]] = {}
        self.etag: str | None = None
        self._resync()

    def watch(self, paths: dict[str, tuple[int, str]]) -> None:
        """Start following ``paths`` too (call before the next ``refresh``). Their state
        so far is in the deltas still to come: the etag predates their writes."""
        self.watched.update(paths)

    def holds(self, want: dict[str, tuple[int, str]]) -> bool:
        return all(self.have.get(path) == expected for path, expected in want.items())

    def refresh(self) -> None:
        """One fullview delta since the last etag (a 412 when nothing changed)."""
        try:
            result = self.sdk.fullview(self.etag)
        except OutOfSyncError:
            self._resync()
            return
        if result.changed:
            self._apply(result.files, result.deleted)
            self.etag = result.etag

    def _resync(self) -> None:
        self.have.clear()
        result = self.sdk.fullview(sink=self)
        self.etag = result.etag

    def _apply(self, files: list[CloudFile], deleted: list[str]) -> None:
        for gone in deleted:  # before the files: a path may be deleted, then made again
            prefix = gone.rstrip("/") + "/"
            for path in [p for p in self.have if p == gone or p.startswith(prefix)]:
                del self.have[path]
        for f in files:
            if f.path in self.watched:
                self.have[f.path] = (f.size, f.checksum)

    # FullviewSink, for ``_resync``
    def add(self, files: list[CloudFile], folders: list[CloudFolder],
            deleted: list[str]) -> None:
        self._apply(files, deleted)

    def restart(self) -> None:
        self.have.clear()


class VzCloud(System):
    name = "vzcloud"
    can_remount = True

    def __init__(self, work: Path, cloud: EmbeddedCloud, creds: CloudCredentials) -> None:
        self.cloud = cloud
        config, run = work / "vz-config", work / "vz-run"
        run.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = {**os.environ, "VZCLOUD_CONFIG_DIR": str(config), "XDG_RUNTIME_DIR": str(run),
               "XDG_CACHE_HOME": str(work / "vz-xdg-cache")}
        self.mounts: dict[str, VzMount] = {}
        for part, token in (("main", creds.main_mount), ("tree", creds.tree_mount)):
            profile = f"bench-{part}"
            write_profile(config, profile, cloud.url, creds, token)
            self.mounts[part] = VzMount(profile, work / f"vz-{part}-mnt", work / f"vz-{part}-cache",
                                        work / f"vz-{part}-mount.log", env)
        self.main = self.mounts["main"].mountpoint / MAIN_CLOUD_DIR.lstrip("/")
        self.tree = self.mounts["tree"].mountpoint / TREE_CLOUD_DIR.lstrip("/")
        c, t = creds.client, creds.main_checks
        self.sdk = Cloud(c.client_id, c.client_secret, c.redirect_uri, t.access_token,
                         t.refresh_token, base_url=cloud.url)
        # Started before any workload writes, so every later change is in its deltas.
        self.stored_view = _StoredView(self.sdk)
        for m in self.mounts.values():
            m.start()

    def pid(self, part: str) -> int | None:
        proc = self.mounts[part].proc
        return None if proc is None else proc.pid

    def server_pid(self) -> int | None:
        return self.cloud.pid

    def cold(self, part: str) -> None:
        self.stop(part)
        self.clear_cache(part, everything=False)
        self.start(part)

    def stop(self, part: str) -> None:
        self.mounts[part].stop()

    def clear_cache(self, part: str, everything: bool) -> None:
        cache = self.mounts[part].cache_dir
        shutil.rmtree(cache if everything else cache / "blocks", ignore_errors=True)

    def start(self, part: str) -> None:
        self.mounts[part].start()

    def wait_stored(self, files: dict[str, Expected], timeout: float) -> bool:
        """Until the cloud holds every file with the expected size and sha256, as seen by
        one fullview delta per ``STORED_STEP`` (``_StoredView``): each step costs the
        cloud the changes made since the last one (a 412 when none), not a listing of
        every pending folder, so the check adds little load to the uploads it waits for.
        """
        want = {P.join([*P.split_path(MAIN_CLOUD_DIR), *rel.split("/")]): (w.size, w.sha256)
                for rel, w in files.items()}
        self.stored_view.watch(want)

        def done() -> bool:
            try:
                self.stored_view.refresh()
            except CloudError:
                return False  # e.g. a transient failure: look again at the next step
            return self.stored_view.holds(want)

        return wait_until(done, timeout, STORED_STEP)

    def close(self) -> None:
        for part in self.mounts:
            self.stop(part)
        self.sdk.close()


# rclone ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rclone_version(exe: str) -> str:
    out = subprocess.run([exe, "version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


class Rclone(System):
    name = "rclone"
    can_remount = True
    MOUNT_OPTIONS = ("--vfs-cache-mode", "full")

    def __init__(self, exe: str, work: Path, served: Path) -> None:
        self.exe = exe
        self.served = served
        self.config = work / "rclone.conf"
        self.cache_dir = work / "rclone-cache"
        self.mountpoint = work / "rclone-mnt"
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.log = work / "rclone.log"
        self.main, self.tree = self.mountpoint / "main", self.mountpoint / "tree"
        port = _free_port()
        self.config.write_text(f"[bench]\ntype = webdav\nurl = http://127.0.0.1:{port}/\n"
                               "vendor = other\n")
        self._log_file: IO[bytes] = open(self.log, "ab")  # closed in close()
        self.serve = subprocess.Popen(
            [exe, "serve", "webdav", str(served), "--addr", f"127.0.0.1:{port}",
             "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return self.serve.poll() is not None

        if not wait_until(listening, 30, 0.05) or self.serve.poll() is not None:
            raise BenchError(f"rclone serve webdav failed:\n{_tail(self.log)}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start("main")

    def pid(self, part: str) -> int | None:
        return None if self.proc is None else self.proc.pid

    def server_pid(self) -> int | None:
        return self.serve.pid

    def cold(self, part: str) -> None:
        self.stop(part)
        self.clear_cache(part, everything=True)
        self.start(part)

    def stop(self, part: str) -> None:
        _unmount(self.mountpoint, self.proc, timeout=120)
        self.proc = None

    def clear_cache(self, part: str, everything: bool) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def start(self, part: str) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "mount", "bench:", str(self.mountpoint), "--config", str(self.config),
             "--cache-dir", str(self.cache_dir), *self.MOUNT_OPTIONS],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file)
        proc = self.proc
        if not wait_until(lambda: _is_mount(self.mountpoint) or proc.poll() is not None,
                          60, MOUNT_STEP) or proc.poll() is not None:
            raise BenchError(f"rclone mount failed:\n{_tail(self.log)}")

    def wait_stored(self, files: dict[str, Expected], timeout: float) -> bool:
        pending = dict(files)

        def done() -> bool:
            for rel, want in list(pending.items()):
                try:
                    if os.stat(self.served / "main" / rel).st_size == want.size:
                        del pending[rel]
                except FileNotFoundError:
                    pass
            return not pending

        return wait_until(done, timeout, STORED_STEP)

    def close(self) -> None:
        self.stop("main")
        if self.serve.poll() is None:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(10)
            except subprocess.TimeoutExpired:
                self.serve.kill()
                self.serve.wait()
        self._log_file.close()
