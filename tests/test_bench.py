"""scripts/bench's own pieces (no FUSE, no timing): the data set built in bulk through the
store is what the API serves, and the report's ratios and targets are computed right."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from vzcloud import Cloud
from vzcloud.bench import dataset, report
from vzcloud.bench.dataset import MiB
from vzcloud.bench.workloads import WORKLOADS
from vzcloud.server.config import ServerConfig
from vzcloud.server.runner import BackgroundServer

TINY = replace(dataset.QUICK, big_file=2 * MiB + 5, random_reads=3, write_size=MiB,
               tar_files=4, ls_entries=3, tiny_files=4, tree_dirs=2, tree_files_per_dir=3)


def test_bulk_built_cloud_serves_the_local_data_set(tmp_path: Path) -> None:
    ds = dataset.build_local(TINY, tmp_path)
    assert (ds.main / "big.bin").stat().st_size == TINY.big_file
    assert hashlib.sha256((ds.main / "big.bin").read_bytes()).hexdigest() == ds.big_sha256
    assert len(ds.tar_members) == TINY.tar_files
    assert all(0 <= o < TINY.big_file for o in ds.random_offsets)
    creds = dataset.build_cloud(ds, tmp_path / "cloud")
    server = BackgroundServer(ServerConfig(data_dir=tmp_path / "cloud")).start()
    try:
        c = creds.client
        for user_token, top, local in ((creds.main_checks, dataset.MAIN_CLOUD_DIR, ds.main),
                                       (creds.tree_mount, dataset.TREE_CLOUD_DIR, ds.tree)):
            with Cloud(c.client_id, c.client_secret, c.redirect_uri, user_token.access_token,
                       user_token.refresh_token, base_url=server.url) as sdk:
                files = {f.path: f for f in sdk.fullview().files}
                expected = {p: p_local for p_local in local.rglob("*") if p_local.is_file()
                            for p in [top + "/" + p_local.relative_to(local).as_posix()]}
                assert set(files) == set(expected)
                for path, p_local in expected.items():
                    data = p_local.read_bytes()
                    assert (files[path].size, files[path].checksum) == \
                        (len(data), hashlib.sha256(data).hexdigest())
                if top == dataset.MAIN_CLOUD_DIR:
                    assert sdk.fetch_range(top + "/big.bin", MiB, 16)[0] == \
                        (ds.main / "big.bin").read_bytes()[MiB:MiB + 16]
    finally:
        server.stop()


def test_report_ratios_and_targets() -> None:
    metrics = [m for w in WORKLOADS.values() for m in w.metrics(TINY)]
    results = report.Results(metrics, ["vzcloud", "local", "rclone"])
    for value in (2.0, 1.0, 9.0):
        results.add("seqread.cold", "vzcloud", value)
    results.add("seqread.cold", "rclone", 4.0)
    results.add("seqread.cold", "local", None)  # a failed run has no figure
    results.add("mount.remount", "vzcloud", 0.5)
    results.add_rss("seqread", "vzcloud", 150 * 1000 * 1000)
    results.add_rss("mount", "vzcloud", 250 * 1000 * 1000)
    assert results.median("seqread.cold", "vzcloud") == 2.0
    assert results.speed("seqread.cold", "rclone") == 2.0
    assert results.speed("seqread.cold", "local") is None
    by_target = {t["target"]: t for t in report.evaluate(results)}
    assert by_target["cold seq read >= 2x rclone"]["met"] is True
    assert by_target["remount to first listing < 1 s"]["met"] is True
    assert by_target["mount RSS < 200 MB through all"]["met"] is False
    assert by_target["ls -l warm >= 1x rclone"]["met"] is None
    text = report.table(results) + report.targets_table(report.evaluate(results))
    assert "2.00x" in text and "not measured" in text
