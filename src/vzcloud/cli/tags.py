"""``vzcloud tags``: show, set or clear the tags of a cloud file or folder."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, item_path, note, out, profile_option


def tag_list(text: str) -> list[str]:
    """argparse type: ``a, b,c`` -> ``["a", "b", "c"]`` (at least one tag)."""
    tags = [t.strip() for t in text.split(",") if t.strip()]
    if not tags:
        raise argparse.ArgumentTypeError("give at least one tag, like --set holiday,beach "
                                         "(--clear removes them all)")
    return tags


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "tags", run, help="show, set or clear an item's tags",
                    description="Without options, print the tags of a cloud file or folder, one "
                    "per line. --set replaces them; --clear removes them all. 'vzcloud search "
                    "tags:NAME' finds tagged items.", parents=[profile_option()])
    p.add_argument("path", type=item_path, metavar="PATH", help="cloud file or folder")
    change = p.add_mutually_exclusive_group()
    change.add_argument("--set", type=tag_list, metavar="TAG,TAG",
                        help="replace the tags with these (comma-separated)")
    change.add_argument("--clear", action="store_true", help="remove every tag")


def run(args: argparse.Namespace) -> int:
    with connect(args, not_found="check the path with 'vzcloud ls'") as cloud:
        if args.set is None and not args.clear:
            tags = cloud.tags(args.path)
            for tag in tags:
                out(tag)
            if not tags:
                note(f"{args.path} has no tags")
            return EXIT_OK
        item = cloud.file_metadata(args.path)
        if args.clear:
            cloud.untag(item)
            out(f"cleared the tags of {args.path}")
        else:
            cloud.tag(item, args.set)
            out(f"tagged {args.path}: {', '.join(args.set)}")
    return EXIT_OK
