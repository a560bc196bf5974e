"""``vzcloud status``, ``vzcloud refresh`` and the control channel of a live mount, and the
progress ``mount`` and ``umount`` show (real FUSE mounts through tests/mount_harness.py,
the CLI through its entry point in a subprocess)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.mount_harness import (
    MOUNT_TIMEOUT,
    USERNAME,
    CloudEnv,
    Mount,
    mounted,
    require_fuse,
    start_cloud,
    stop_cloud,
    write_profile,
)
from vzcloud.fs import control
from vzcloud.server.content import put_file_version

KIB = 1 << 10


def _status(mnt: Mount, *args: str) -> dict[str, Any]:
    done = mnt.vzcloud("status", *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _wait_status(mnt: Mount, ready: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = _status(mnt, str(mnt.path))
        if ready(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.3)


@MOUNT_TIMEOUT
def test_status_refresh_and_umount_of_a_live_mount(tmp_path: Path) -> None:
    env = start_cloud(tmp_path)
    try:
        # A poll interval far longer than the test: only `refresh` can bring changes in.
        with mounted(env, args=("--poll-interval", "600")) as mnt:
            _check_refresh(env, mnt)
            _check_queued_uploads(env, mnt)
            _check_control_channel(mnt)
            # The cloud takes uploads again, slowly: umount sees both still queued, and
            # the drain retries them at once rather than after their backoff.
            env.faults.clear()
            env.faults.slow("upload_intent", 2)
            started = time.monotonic()
            done = mnt.vzcloud("umount", str(mnt.path))
            assert done.returncode == 0, done.stderr
            assert time.monotonic() - started < 15
            # Not a terminal: a first line, then plain progress lines of bytes uploaded.
            assert "waiting for 2 queued upload(s) (400.0 KiB)" in done.stderr
            assert "uploading queued files: 100% (400.0 KiB of 400.0 KiB)" in done.stderr
            assert "all uploads finished" in done.stderr
        env.wait_cloud_bytes("/VZMOBILE/a.bin", b"a" * 100 * KIB, timeout=1)
        env.wait_cloud_bytes("/VZMOBILE/docs/b.bin", b"b" * 300 * KIB, timeout=1)
    finally:
        stop_cloud(env)


def _check_refresh(env: CloudEnv, mnt: Mount) -> None:
    assert "remote.txt" not in os.listdir(mnt.vz())
    env.sdk.upload(io.BytesIO(b"written elsewhere"), "/VZMOBILE", "remote.txt")
    started = time.monotonic()
    done = mnt.vzcloud("refresh", str(mnt.path))
    assert done.returncode == 0, done.stderr
    assert "is up to date with the cloud" in done.stderr
    # Visible as soon as refresh returns, long before the next poll (600 s).
    assert "remote.txt" in os.listdir(mnt.vz())
    assert mnt.vz("remote.txt").read_bytes() == b"written elsewhere"
    assert time.monotonic() - started < 10

    # The cloud failing: refresh says so as soon as the sync it asked for failed.
    env.faults.fail_rate("fullview", 1.0, 503)
    failed = mnt.vzcloud("refresh", str(mnt.path))
    env.faults.clear()
    assert failed.returncode == 1
    assert f"{mnt.path} did not sync: the sync failed: " in failed.stderr
    assert failed.stderr.count("\n") == 1


def _check_queued_uploads(env: CloudEnv, mnt: Mount) -> None:
    env.faults.fail_rate("upload_intent", 1.0, 503)  # every upload fails: they stay queued
    mnt.vz("a.bin").write_bytes(b"a" * 100 * KIB)
    mnt.vz("docs").mkdir()
    mnt.vz("docs", "b.bin").write_bytes(b"b" * 300 * KIB)
    report = _wait_status(mnt, lambda r: r["uploads"]["failing"] == 2)

    assert report["error"] is None
    assert report["mountpoint"] == str(mnt.path)
    assert report["profile"] == "mounttest"
    assert report["server"] == env.server.url
    assert report["state"] == "mounted"
    assert report["pid"] == mnt.proc.pid
    sync = report["sync"]
    assert sync["poll_interval"] == 600
    assert sync["last_sync"] is not None and 0 <= sync["age"] < 60
    uploads = report["uploads"]
    assert uploads["queued"] == 2
    assert uploads["queued_bytes"] == 400 * KIB
    jobs = {job["path"]: job for job in uploads["jobs"]}
    assert set(jobs) == {"/VZMOBILE/a.bin", "/VZMOBILE/docs/b.bin"}
    assert jobs["/VZMOBILE/a.bin"]["size"] == 100 * KIB
    assert jobs["/VZMOBILE/docs/b.bin"]["size"] == 300 * KIB
    for job in jobs.values():
        assert job["attempts"] >= 1
        assert job["last_error"]  # the server's description of the injected 503
    assert uploads["failed_attempts"] >= 2
    cache = report["cache"]
    assert cache["limit"] == 10 << 30 and cache["bytes"] >= 0
    # remote.txt was read once through the cache: one miss, then hits or none.
    assert cache["misses"] >= 1 and 0 <= cache["hit_rate"] <= 1
    assert any(e["level"] == "WARNING" and "upload" in e["message"]
               for e in report["recent_errors"])

    text = mnt.vzcloud("status", str(mnt.path))
    assert text.returncode == 0, text.stderr
    assert "2 files queued (400.0 KiB), 2 failing" in text.stdout
    assert "/VZMOBILE/docs/b.bin  300.0 KiB" in text.stdout
    assert "every 600 s" in text.stdout

    # Without a mountpoint: every mount of this user, and the default profile's server.
    everything = _status(mnt)
    assert [m["mountpoint"] for m in everything["mounts"]] == [str(mnt.path)]
    server = everything["default_profile"]
    assert server["profile"] == "mounttest" and server["server"] == env.server.url
    assert server["reachable"] is True and server["signed_in"] is True


def _check_control_channel(mnt: Mount) -> None:
    sock = Path(_status(mnt, str(mnt.path))["socket"])
    assert sock.parent == mnt.path.parent / "vzcloud" / "mounts"  # $XDG_RUNTIME_DIR/vzcloud
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    try:
        control.request(sock, "reboot")
        raise AssertionError("an unknown request was accepted")
    except control.ControlError as exc:
        assert "unknown request 'reboot'" in str(exc)
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(10)
        raw.connect(str(sock))
        raw.sendall(b"not json\n" + json.dumps({"request": "status"}).encode() + b"\n")
        answers = raw.makefile("rb")
        assert json.loads(answers.readline()) == {"ok": False, "error": "not a JSON line"}
        assert json.loads(answers.readline())["status"]["uploads"]["queued"] == 2


def test_status_and_refresh_without_a_mount(tmp_path: Path) -> None:
    """Bad input: a directory that is no mount (exit 4); no mounts at all (a report, exit
    0) with the default profile's server unreachable."""
    env = start_cloud(tmp_path)
    try:
        config = tmp_path / "config"
        write_profile(config, env, server="http://127.0.0.1:9")  # nothing listens there
        process_env = {**os.environ, "VZCLOUD_CONFIG_DIR": str(config),
                       "XDG_RUNTIME_DIR": str(tmp_path)}

        def vzcloud(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "vzcloud.cli.main", *args],
                                  env=process_env, capture_output=True, text=True, timeout=60)

        for command in ("status", "refresh"):
            done = vzcloud(command, str(tmp_path))
            assert done.returncode == 4, done.stderr
            assert done.stderr.startswith(f"vzcloud: error: {tmp_path} is not a running "
                                          "vzcloud mount")
            assert done.stderr.count("\n") == 1
        done = vzcloud("status")
        assert done.returncode == 0, done.stderr
        assert "no vzcloud mounts running" in done.stdout
        assert "default profile mounttest: http://127.0.0.1:9 unreachable" in done.stdout
        report = json.loads(vzcloud("status", "--json").stdout)
        assert report["mounts"] == []
        assert report["default_profile"]["reachable"] is False
    finally:
        stop_cloud(env)


@MOUNT_TIMEOUT
def test_first_mount_of_a_large_account_shows_progress(tmp_path: Path) -> None:
    """The first mount loads every file: the daemonizing `vzcloud mount` shows it (plain
    lines, stderr not being a terminal) before saying it is mounted."""
    require_fuse()
    env = start_cloud(tmp_path)
    try:
        _seed_files(env, 2500)
        base = tmp_path / "daemon"
        mountpoint = base / "mnt"
        mountpoint.mkdir(parents=True)
        write_profile(base / "config", env)
        process_env = {**os.environ, "VZCLOUD_CONFIG_DIR": str(base / "config"),
                       "XDG_RUNTIME_DIR": str(base), "XDG_CACHE_HOME": str(base / "cache")}

        def vzcloud(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "vzcloud.cli.main", *args],
                                  env=process_env, capture_output=True, text=True, timeout=60)

        done = vzcloud("mount", str(mountpoint))
        try:
            assert done.returncode == 0, done.stderr
            lines = done.stderr.splitlines()
            assert lines[0] == ("vzcloud: first mount of this cache: loading the list of all "
                                "files...")
            assert "loading the file list: 100% (2500 files of 2500 files)" in lines
            assert lines[-1].startswith(f"vzcloud: mounted at {mountpoint}")
            assert len(os.listdir(mountpoint / "VZMOBILE" / "d1")) == 1000
        finally:
            done = vzcloud("umount", str(mountpoint))
            if done.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        assert done.returncode == 0, done.stderr
        # A second mount of the same cache applies only the changes: no progress lines.
        again = vzcloud("mount", str(mountpoint))
        vzcloud("umount", str(mountpoint))
        assert again.returncode == 0, again.stderr
        assert "loading" not in again.stderr
    finally:
        stop_cloud(env)


def _seed_files(env: CloudEnv, count: int) -> None:
    """``count`` one-byte files in folders of 1000 under /VZMOBILE, written straight into
    the embedded cloud's store (uploading them one by one would take a minute)."""
    cloud = env.server.cloud
    store = cloud.store
    account = store.account_by_username(USERNAME)
    assert account is not None
    env.sdk.upload(io.BytesIO(b"x"), "/VZMOBILE", "seed.txt")  # puts the blob in place
    checksum = hashlib.sha256(b"x").hexdigest()
    names = [f"f{i}.txt" for i in range(count - 1)]
    batches = [names[start:start + 1000] for start in range(0, len(names), 1000)]
    for number in range(len(batches)):
        env.sdk.create_folder(f"/VZMOBILE/d{number}")
    with store.tx():  # one transaction; no HTTP call inside (the server needs the lock)
        for number, batch in enumerate(batches):
            parent = store.resolve(account, f"/VZMOBILE/d{number}")["id"]
            for name in batch:
                put_file_version(store, cloud.config, account, parent, name, checksum, 1)
