"""``vzcloud mv``: move or rename a cloud file or folder."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, item_path, out, profile_option, transfer_target


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "mv", run, help="move or rename a cloud file or folder",
                    description="Move SRC into DST when DST is an existing folder; otherwise "
                    "move or rename it to the path DST (a file there is replaced).",
                    parents=[profile_option()])
    p.add_argument("src", type=item_path, metavar="SRC", help="cloud file or folder")
    p.add_argument("dst", type=item_path, metavar="DST", help="existing folder, or the new path")


def run(args: argparse.Namespace) -> int:
    with connect(args, not_found="check both paths with 'vzcloud ls'") as cloud:
        moved = cloud.move(args.src, transfer_target(cloud, args.src, args.dst))
    out(f"moved {args.src} to {moved.path}")
    return EXIT_OK
