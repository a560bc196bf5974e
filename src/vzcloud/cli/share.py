"""``vzcloud share``: share cloud files and folders through a public link."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_FAILED, EXIT_OK, CliError, add_command
from vzcloud.cli._common import connect, count, item_path, note, out, profile_option, public_link

DEFAULT_EXPIRES = 86400


def _seconds(text: str) -> int:
    if not text.isdigit() or len(text) > 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 = never expires)")
    return int(text)


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "share", run, help="share files and folders by a public link",
                    description="Share cloud files and folders in one share and print its "
                    "public link (anyone with it can download them; the share's id follows "
                    "on stderr). 'vzcloud unshare ID' ends it.", parents=[profile_option()])
    p.add_argument("paths", nargs="+", type=item_path, metavar="PATH", help="cloud file or folder")
    p.add_argument("--expires", type=_seconds, default=DEFAULT_EXPIRES, metavar="SECONDS",
                   help=f"lifetime of the link in seconds (default {DEFAULT_EXPIRES}, one day; "
                   "0: never expires)")
    p.add_argument("--name", help="the share's name, shown to those who open the link")


def run(args: argparse.Namespace) -> int:
    with connect(args, not_found="check the path with 'vzcloud ls'") as cloud:
        items = [cloud.file_metadata(path) for path in args.paths]
        share = cloud.share(items, name=args.name, expires_seconds=args.expires)
    link = public_link(share)
    if link is None:
        raise CliError(f"the server created share {share.uid} but sent no public link; see it "
                       "with 'vzcloud shares'", EXIT_FAILED)
    out(link)
    expires = f"expires {share.expiration_date}" if share.expiration_date else "never expires"
    note(f"share {share.uid} ({count(share.total_resource_count, 'item')}, {expires}); "
         f"'vzcloud unshare {share.uid}' ends it")
    return EXIT_OK
