"""``vzcloud search``: find cloud files and folders with a query.

Queries are Lucene-style: ``field:value``, combined with ``AND``; values match word
prefixes, case-insensitively. Fields include name, extension, contentType, file, folder,
tags, favorite. Examples: ``name:report``, ``extension:jpg AND favorite:true``,
``contentType:image/*``, ``tags:holiday``.
"""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import (
    connect,
    display_path,
    json_option,
    listing_json,
    note,
    out,
    print_json,
    profile_option,
)

ALL = "*"


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "search", run, help="find files and folders",
                    description=__doc__, parents=[profile_option(), json_option()])
    p.add_argument("query", metavar="QUERY", help="like 'name:report AND extension:pdf'")
    p.add_argument("--virtualfolder", default=ALL, metavar="NAME",
                   help="search one virtual folder (default: all of them)")


def run(args: argparse.Namespace) -> int:
    from vzcloud.api.endpoints import MAX_COUNT
    from vzcloud.api.models import CloudFile, CloudFolder

    with connect(args, not_found="list the virtual folders with 'vzcloud ls'") as cloud:
        found = list(cloud.iter_pages("search", query=args.query,
                                      virtualfolder=args.virtualfolder, count=MAX_COUNT))
    folders = [f for f in found if isinstance(f, CloudFolder)]
    files = [f for f in found if isinstance(f, CloudFile)]
    if args.json:
        print_json(listing_json(folders, files))
        return EXIT_OK
    for folder in folders:
        out(display_path(folder))
    for file in files:
        out(display_path(file))
    if not found:
        note(f"nothing matches {args.query!r}")
    return EXIT_OK
