"""``vzcloud cp``: copy a cloud file or folder within the cloud."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, item_path, out, profile_option, transfer_target


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "cp", run, help="copy a cloud file or folder",
                    description="Copy SRC (a folder with its contents) into DST when DST is an "
                    "existing folder; otherwise to the path DST (a file there is replaced). "
                    "Nothing is downloaded: the cloud copies.",
                    parents=[profile_option()])
    p.add_argument("src", type=item_path, metavar="SRC", help="cloud file or folder")
    p.add_argument("dst", type=item_path, metavar="DST", help="existing folder, or the copy's path")


def run(args: argparse.Namespace) -> int:
    with connect(args, not_found="check both paths with 'vzcloud ls'") as cloud:
        copied = cloud.copy(args.src, transfer_target(cloud, args.src, args.dst))
    out(f"copied {args.src} to {copied.path}")
    return EXIT_OK
