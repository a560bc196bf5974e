"""``vzcloud check``: an unmounted cache compared with the cloud, reported and repaired.

A mount writes files and is unmounted cleanly; the check finds the cache consistent.
Then the cache is damaged on purpose (a file's checksum changed in metadata.db, a job
for an inode that does not exist, a staging file of nobody, a cached block whose content
does not match its checksum): the check reports each as a line and exits 1,
``--repair`` fixes them and a second check finds nothing. A check of a cache in use by a running mount is refused.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from vzcloud.fs.blocks import BlockCache

from .mount_harness import MOUNT_TIMEOUT, mounted, start_cloud, stop_cloud


@MOUNT_TIMEOUT
def test_check_reports_and_repairs_a_damaged_cache(tmp_path: Path) -> None:
    env = start_cloud(tmp_path)
    try:
        with mounted(env, "chk") as mount:
            mount.vz("docs").mkdir()
            for n in range(3):
                mount.vz("docs", f"f{n}.txt").write_bytes(b"content %d\n" % n * 100)
            for n in range(3):
                env.wait_cloud_bytes(f"/VZMOBILE/docs/f{n}.txt", b"content %d\n" % n * 100)
            refused = mount.vzcloud("check", "--cache-dir", str(mount.cache_dir))
            assert refused.returncode == 1 and "in use" in refused.stderr, refused
            refused = mount.vzcloud("check", str(mount.path))
            assert refused.returncode == 1 and "unmount" in refused.stderr, refused
        cache = mount.cache_dir
        clean = mount.vzcloud("check", "--cache-dir", str(cache))
        assert clean.returncode == 0, clean.stdout + clean.stderr

        db = sqlite3.connect(cache / "metadata.db")
        with db:
            db.execute("UPDATE inodes SET checksum = ? WHERE name = 'f1.txt'", ("0" * 64,))
            db.execute("INSERT INTO upload_jobs (ino, queued_at) VALUES (999999, ?)",
                       (time.time(),))
        db.close()
        (cache / "staging" / "888888").write_bytes(b"left over")
        blocks = BlockCache(cache / "blocks", 1 << 30)
        blocks.put("f" * 64, 0, b"nobody's block")
        blocks.close()

        found = mount.vzcloud("check", "--cache-dir", str(cache))
        assert found.returncode == 1, found.stdout + found.stderr
        lines = found.stdout.splitlines()
        assert any("docs/f1.txt is cached with checksum 000" in ln for ln in lines), lines
        assert any("job for inode 999999" in ln for ln in lines), lines
        assert any("staging file 888888" in ln for ln in lines), lines
        assert any(f"cached content {'f' * 64} does not match" in ln for ln in lines), lines
        assert "not repaired" in lines[-1]

        repaired = mount.vzcloud("check", "--repair", "--cache-dir", str(cache))
        assert repaired.returncode == 1, repaired.stdout + repaired.stderr
        assert repaired.stdout.splitlines()[-1] == "4 differences found and repaired"
        again = mount.vzcloud("check", "--cache-dir", str(cache))
        assert again.returncode == 0, again.stdout + again.stderr

        with mounted(env, "chk") as mount:  # the repaired cache mounts and reads right
            assert mount.vz("docs", "f1.txt").read_bytes() == b"content 1\n" * 100
    finally:
        stop_cloud(env)
