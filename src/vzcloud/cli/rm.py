"""``vzcloud rm``: send cloud files and folders to the trash, or delete them for good."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, item_path, out, profile_option


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "rm", run, help="move files and folders to the trash",
                    description="Move cloud files and folders (with their contents) to the "
                    "trash, from where 'vzcloud trash restore' brings them back; with --purge "
                    "delete them for good. Stops at the first path that fails.",
                    parents=[profile_option()])
    p.add_argument("paths", nargs="+", type=item_path, metavar="PATH", help="cloud file or folder")
    p.add_argument("--purge", action="store_true", help="delete for good, skipping the trash")


def run(args: argparse.Namespace) -> int:
    with connect(args, not_found="list the folder with 'vzcloud ls'") as cloud:
        for path in args.paths:
            cloud.delete(path, purge=args.purge)
            out(f"deleted {path} for good" if args.purge else f"moved {path} to the trash")
    return EXIT_OK
