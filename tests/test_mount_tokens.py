"""A revoked token: the mount answers EACCES with a clear log line, keeps what is written
queued, and recovers without remounting once new tokens are in its profile (what
``vzcloud login`` does; here the profile is written directly)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from vzcloud import profiles
from vzcloud.server.auth import digest

from .mount_harness import (
    MOUNT_TIMEOUT,
    PROFILE,
    CloudEnv,
    Mount,
    mounted,
    start_cloud,
    stop_cloud,
    write_profile,
)


def revoke_profile_tokens(env: CloudEnv, mount: Mount) -> None:
    """Revoke every token of the family the mount's profile holds now."""
    saved = os.environ.get("VZCLOUD_CONFIG_DIR")
    os.environ["VZCLOUD_CONFIG_DIR"] = mount.process_env["VZCLOUD_CONFIG_DIR"]
    try:
        profile = profiles.load(PROFILE)
    finally:
        if saved is None:
            del os.environ["VZCLOUD_CONFIG_DIR"]
        else:
            os.environ["VZCLOUD_CONFIG_DIR"] = saved
    with env.server.cloud.store.tx() as db:
        done = db.execute(
            "UPDATE tokens SET revoked = 1 WHERE family IN"
            " (SELECT family FROM tokens WHERE token_hash IN (?, ?))",
            (digest(profile.access_token or ""), digest(profile.refresh_token or "")))
        assert done.rowcount > 0


@MOUNT_TIMEOUT
def test_revoked_token_gives_eacces_and_recovers_after_login(tmp_path: Path) -> None:
    env = start_cloud(tmp_path)
    try:
        with mounted(env, "tok") as mount:
            mount.vz("before").mkdir()
            revoke_profile_tokens(env, mount)
            with pytest.raises(PermissionError) as refused:
                mount.vz("during").mkdir()
            assert refused.value.errno == errno.EACCES
            # Writes are local: they are accepted and stay queued.
            mount.vz("before", "queued.txt").write_bytes(b"written while revoked\n")
            deadline = time.monotonic() + 10
            while "vzcloud login" not in mount.stderr() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "vzcloud login" in mount.stderr(), mount.stderr()[-3000:]

            write_profile(Path(mount.process_env["VZCLOUD_CONFIG_DIR"]), env)  # "login"
            mount.vz("after").mkdir()
            assert env.sdk.file_metadata("/VZMOBILE/after") is not None
            env.wait_cloud_bytes("/VZMOBILE/before/queued.txt", b"written while revoked\n",
                                 timeout=30)
    finally:
        stop_cloud(env)
