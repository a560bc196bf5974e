"""``vzcloud put``: upload a local file (or, with ``-r``, a directory) into a cloud folder.

A file of the same name in the folder gets replaced by a new version. ``-r`` creates the
directory as a folder in REMOTE_DIR (existing folders are reused) and uploads everything
below it; symbolic links to directories and special files are skipped (each with a
note). Large files go up in chunks; a progress bar (or, off a terminal, a line per
quarter) follows each file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzcloud.api import paths as P
from vzcloud.cli import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CliError, add_command
from vzcloud.cli._common import (
    DEFAULT_VIRTUAL_FOLDER,
    cloud_path,
    connect,
    count,
    human_size,
    note,
    out,
    profile_option,
)
from vzcloud.cli._progress import TransferProgress

if TYPE_CHECKING:
    from vzcloud.sdk import Cloud


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "put", run, help="upload a file or directory",
                    description=__doc__, parents=[profile_option()])
    p.add_argument("local", type=Path, metavar="LOCAL", help="local file (or directory, with -r)")
    p.add_argument("remote_dir", nargs="?", type=cloud_path, default="/" + DEFAULT_VIRTUAL_FOLDER,
                   metavar="REMOTE_DIR",
                   help=f"existing cloud folder to upload into (default /{DEFAULT_VIRTUAL_FOLDER})")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="upload a directory with everything below it")


def _upload(cloud: Cloud, local: Path, remote_dir: str) -> int:
    """Upload one file with progress and report it; returns its size."""
    from vzcloud.api.models import join_path

    progress = TransferProgress(join_path(remote_dir, local.name), local.stat().st_size)
    try:
        uploaded = cloud.upload(local, remote_dir, progress=progress)
        progress.finish()
    finally:
        progress.close()
    out(f"uploaded {local} ({human_size(uploaded.size)}) to {uploaded.path}")
    return uploaded.size


def _upload_tree(cloud: Cloud, root: Path, remote_dir: str) -> tuple[str, int, int]:
    """Upload directory ``root`` as a folder of ``remote_dir``; (folder, files, bytes)."""
    top = P.join([*P.split_path(remote_dir), root.resolve().name])
    cloud.create_folder(top, override="modify")
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        remote = P.join([*P.split_path(top), *here.relative_to(root).parts])
        for name in list(dirnames):
            if (here / name).is_symlink():
                note(f"skipped {here / name}: a symbolic link to a directory")
        dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink())
        for name in dirnames:
            cloud.create_folder(P.join([*P.split_path(remote), name]), override="modify")
        for name in sorted(filenames):
            if not (here / name).is_file():
                note(f"skipped {here / name}: not a regular file")
                continue
            total += _upload(cloud, here / name, remote)
            files += 1
    return top, files, total


def run(args: argparse.Namespace) -> int:
    local: Path = args.local
    if not local.exists():
        raise CliError(f"no such local file or directory {local}; check the path", EXIT_NOT_FOUND)
    if local.is_dir() and not args.recursive:
        raise CliError(f"{local} is a directory; add -r to upload it with its contents",
                       EXIT_USAGE)
    if not local.is_dir() and not local.is_file():
        raise CliError(f"{local} is not a regular file; put uploads files and directories",
                       EXIT_USAGE)
    try:
        with connect(args, not_found=f"create the folder with 'vzcloud mkdir -p "
                     f"{args.remote_dir}'") as cloud:
            if local.is_file():
                _upload(cloud, local, args.remote_dir)
                return EXIT_OK
            top, files, total = _upload_tree(cloud, local, args.remote_dir)
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename or local}: {exc.strerror}; check the local "
                       "files' permissions", EXIT_FAILED) from exc
    out(f"uploaded {count(files, 'file')} ({human_size(total)}) to {top}")
    return EXIT_OK
