"""``vzcloud unshare``: end a share; its public link stops working at once."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, out, profile_option


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "unshare", run, help="end a share",
                    description=__doc__, parents=[profile_option()])
    p.add_argument("uid", metavar="ID", help="the share's id, as 'vzcloud shares' lists it")


def run(args: argparse.Namespace) -> int:
    with connect(args, not_found="list your shares with 'vzcloud shares'") as cloud:
        cloud.unshare(args.uid)
    out(f"ended share {args.uid}")
    return EXIT_OK
