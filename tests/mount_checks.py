"""Comparing trees for the real-mount tests: a local (or mounted) directory against what
the cloud holds under a path, seen through the SDK's fullview.

- ``Tree``: relative path -> SHA-256 hex of a file's content, or ``None`` for a folder.
  The cloud's ``checksum`` is the SHA-256 of the content, so equal trees mean equal bytes.
- ``local_tree(root)``: the tree under a directory (read through the mount when ``root``
  is in it).
- ``cloud_tree(env, prefix)``: the live (not trashed) files and folders under a cloud
  path; folders come from file paths and from fullview's empty folders.
- ``wait_cloud_tree(env, prefix, expected)``: uploads are write-back, so poll (bounded)
  until the cloud holds exactly ``expected``; fails with what differs.
- ``download_tree(env, prefix, dest)``: the cloud's copy of a tree, to check it with the
  program that wrote it (git fsck, sqlite integrity_check).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from vzcloud.fs.uploads import sha256_file

from .mount_harness import CloudEnv

Tree = dict[str, str | None]


def local_tree(root: Path) -> Tree:
    tree: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames:
            tree[(base / name).relative_to(root).as_posix()] = None
        for name in filenames:
            tree[(base / name).relative_to(root).as_posix()] = sha256_file(base / name)
    return tree


def _add_folders(tree: Tree, rel: str) -> None:
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        tree.setdefault("/".join(parts[:depth]), None)


def cloud_tree(env: CloudEnv, prefix: str) -> Tree:
    view = env.sdk.fullview()
    start = prefix.rstrip("/") + "/"
    tree: Tree = {}
    for f in view.files:
        if f.path.startswith(start):
            rel = f.path[len(start):]
            tree[rel] = f.checksum
            _add_folders(tree, rel)
    for d in view.empty_folders:
        if d.path.startswith(start):
            rel = d.path[len(start):]
            tree[rel] = None
            _add_folders(tree, rel)
    return tree


def describe_difference(expected: Mapping[str, object], got: Mapping[str, object],
                        limit: int = 8) -> str:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(p for p in set(expected) & set(got) if expected[p] != got[p])
    return (f"{len(missing)} missing {missing[:limit]}, {len(extra)} unexpected "
            f"{extra[:limit]}, {len(wrong)} with other content {wrong[:limit]}")


def wait_cloud_tree(env: CloudEnv, prefix: str, expected: Tree, timeout: float = 30) -> float:
    """Until the cloud holds exactly ``expected`` under ``prefix``; returns the seconds
    waited."""
    started = time.monotonic()
    while True:
        got = cloud_tree(env, prefix)
        if got == expected:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"the cloud under {prefix} still differs after {timeout} s: "
                                 + describe_difference(expected, got))
        time.sleep(0.2)


def download_tree(env: CloudEnv, prefix: str, dest: Path) -> None:
    for rel, checksum in cloud_tree(env, prefix).items():
        target = dest / rel
        if checksum is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            env.sdk.download(f"{prefix.rstrip('/')}/{rel}", target)
