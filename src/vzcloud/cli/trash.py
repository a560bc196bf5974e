"""``vzcloud trash``: list the trash, restore items from it, or empty it.

    vzcloud trash [list] [--virtualfolder NAME]
    vzcloud trash restore PATH...
    vzcloud trash empty [--virtualfolder NAME]

Items are listed and restored by their original paths; a folder comes back with its
contents. Emptying deletes everything in one virtual folder's trash for good.
"""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import (
    DEFAULT_VIRTUAL_FOLDER,
    connect,
    display_path,
    item_path,
    note,
    out,
    profile_option,
)


def _virtualfolder_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--virtualfolder", metavar="NAME", default=argparse.SUPPRESS,
                        help=f"whose trash (default {DEFAULT_VIRTUAL_FOLDER})")
    return parent


def register(subparsers: Any) -> None:
    common = [profile_option(), _virtualfolder_option()]
    trash = add_command(subparsers, "trash", list_trash, help="list, restore or empty the trash",
                        description=__doc__, parents=common)
    actions = trash.add_subparsers(title="actions", metavar="ACTION")
    add_command(actions, "list", list_trash, help="list the trash (the default action)",
                parents=common)
    p = add_command(actions, "restore", restore, parents=[profile_option()],
                    help="put items back at their original paths")
    p.add_argument("paths", nargs="+", type=item_path, metavar="PATH",
                   help="original path, as 'vzcloud trash' lists it")
    add_command(actions, "empty", empty, help="delete everything in the trash for good",
                parents=common)


def _virtualfolder(args: argparse.Namespace) -> str:
    return getattr(args, "virtualfolder", None) or DEFAULT_VIRTUAL_FOLDER


def list_trash(args: argparse.Namespace) -> int:
    from vzcloud.api.endpoints import MAX_COUNT

    vf = _virtualfolder(args)
    with connect(args, not_found="list the virtual folders with 'vzcloud ls'") as cloud:
        items = list(cloud.iter_pages("trash", virtualfolder=vf, count=MAX_COUNT))
    for item in items:
        out(display_path(item))
    if not items:
        note(f"the trash of {vf} is empty")
    return EXIT_OK


def restore(args: argparse.Namespace) -> int:
    with connect(args, not_found="see what is in the trash with 'vzcloud trash list'",
                 conflict="move the item at that path away first") as cloud:
        cloud.restore(args.paths)
    for path in args.paths:
        out(f"restored {path}")
    return EXIT_OK


def empty(args: argparse.Namespace) -> int:
    vf = _virtualfolder(args)
    with connect(args, not_found="list the virtual folders with 'vzcloud ls'") as cloud:
        cloud.empty_trash(vf)
    out(f"emptied the trash of {vf}")
    return EXIT_OK
