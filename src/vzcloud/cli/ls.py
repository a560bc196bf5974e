"""``vzcloud ls``: list a cloud folder (the virtual folders when no path is given)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import (
    cloud_path,
    connect,
    count,
    human_size,
    json_option,
    listing_json,
    out,
    print_json,
    profile_option,
)

if TYPE_CHECKING:
    from vzcloud.api.models import CloudFile, CloudFolder


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "ls", run, help="list a cloud folder",
                    description="List the folders (ending in '/') and files of a cloud folder; "
                    "a file's path lists that file. Without PATH: the virtual folders "
                    "(like VZMOBILE).", parents=[profile_option(), json_option()])
    p.add_argument("path", nargs="?", type=cloud_path, default="/",
                   help="cloud folder, like /VZMOBILE/Photos (the leading '/' may be left out)")
    p.add_argument("-l", "--long", action="store_true",
                   help="one item per line with kind, size, modification time (UTC), "
                   "favorite mark (*) and tags")


def _when(stamp: str | None) -> str:
    """``2015-12-21T10:45:54.634Z`` -> ``2015-12-21 10:45``."""
    return stamp[:16].replace("T", " ") if stamp else "-" * 16


def long_line(item: CloudFile | CloudFolder) -> str:
    from vzcloud.api.models import CloudFolder

    is_folder = isinstance(item, CloudFolder)
    size = count(item.count, "item") if isinstance(item, CloudFolder) else human_size(item.size)
    tags = f"  [{item.tags}]" if item.tags else ""
    return (f"{'d' if is_folder else '-'} {size:>11}  {_when(item.version_created)} "
            f"{'*' if item.favorite else ' '} {item.name}{'/' if is_folder else ''}{tags}")


def run(args: argparse.Namespace) -> int:
    with connect(args, not_found="list its parent folder with 'vzcloud ls'") as cloud:
        listing = cloud.metadata(args.path)
    if args.json:
        print_json(listing_json(listing.folders, listing.files))
        return EXIT_OK
    for folder in listing.folders:
        out(long_line(folder) if args.long else folder.name + "/")
    for file in listing.files:
        out(long_line(file) if args.long else file.name)
    return EXIT_OK
