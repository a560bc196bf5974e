"""``vzcloud playlist``: list, show, create, change and delete playlists.

    vzcloud playlist [list]                       UID, type and name of each playlist
    vzcloud playlist show UID                     its name, then ITEMUID and path of each item
    vzcloud playlist create NAME --type TYPE PATH...   prints the new playlist's UID
    vzcloud playlist add UID PATH...              prints each new ITEMUID
    vzcloud playlist remove UID ITEMUID
    vzcloud playlist delete UID

A playlist holds files (images, music or videos) by reference: removing an item or
deleting a playlist leaves the files alone.
"""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.api.endpoints import MAX_COUNT, PLAYLIST_TYPES
from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, count, item_path, note, out, profile_option

_NOT_FOUND = "list the playlists with 'vzcloud playlist list' (and items with 'show UID')"


def register(subparsers: Any) -> None:
    common = [profile_option()]
    group = add_command(subparsers, "playlist", list_playlists, parents=common,
                        help="list, show, create, change or delete playlists",
                        description=__doc__)
    actions = group.add_subparsers(title="actions", metavar="ACTION")
    add_command(actions, "list", list_playlists, parents=common,
                help="list the playlists (the default action)")
    p = add_command(actions, "show", show, parents=common, help="show a playlist's items")
    p.add_argument("uid", metavar="UID")
    p = add_command(actions, "create", create, parents=common, help="create a playlist")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--type", required=True, choices=PLAYLIST_TYPES, help="what it holds")
    p.add_argument("paths", nargs="+", type=item_path, metavar="PATH", help="cloud file to add")
    p = add_command(actions, "add", add, parents=common, help="append files to a playlist")
    p.add_argument("uid", metavar="UID")
    p.add_argument("paths", nargs="+", type=item_path, metavar="PATH", help="cloud file")
    p = add_command(actions, "remove", remove, parents=common,
                    help="remove one item (the file stays)")
    p.add_argument("uid", metavar="UID")
    p.add_argument("itemuid", metavar="ITEMUID", help="as 'vzcloud playlist show UID' lists it")
    p = add_command(actions, "delete", delete, parents=common,
                    help="delete a playlist (its files stay)")
    p.add_argument("uid", metavar="UID")


def list_playlists(args: argparse.Namespace) -> int:
    with connect(args) as cloud:
        playlists = list(cloud.iter_pages("playlists", count=MAX_COUNT))
    for p in playlists:
        out(f"{p.uid}  {p.type}  {p.name}")
    if not playlists:
        note("no playlists; create one with 'vzcloud playlist create NAME --type TYPE PATH...'")
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    with connect(args, not_found=_NOT_FOUND) as cloud:
        playlist = cloud.playlist(args.uid)
        items = list(cloud.iter_pages("playlist_items", playlist_uid=args.uid, count=MAX_COUNT))
    out(f"{playlist.name}  ({playlist.type}, {count(len(items), 'item')})")
    for item in items:
        out(f"{item.itemuid}  {item.path}")
    return EXIT_OK


def create(args: argparse.Namespace) -> int:
    with connect(args, not_found="check the paths with 'vzcloud ls'") as cloud:
        playlist = cloud.create_playlist(args.name, args.type, args.paths)
    out(playlist.uid)
    return EXIT_OK


def add(args: argparse.Namespace) -> int:
    with connect(args, not_found=_NOT_FOUND + "; check the paths with 'vzcloud ls'") as cloud:
        added = cloud.add_playlist_items(args.uid, args.paths)
    for item in added:
        out(f"{item.itemuid}  {item.path}")
    return EXIT_OK


def remove(args: argparse.Namespace) -> int:
    with connect(args, not_found=_NOT_FOUND) as cloud:
        cloud.remove_playlist_item(args.uid, args.itemuid)
    out(f"removed item {args.itemuid} from playlist {args.uid}")
    return EXIT_OK


def delete(args: argparse.Namespace) -> int:
    with connect(args, not_found=_NOT_FOUND) as cloud:
        cloud.delete_playlist(args.uid)
    out(f"deleted playlist {args.uid}")
    return EXIT_OK
