"""``vzcloud shares``: list the account's shares and their public links."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import (
    connect,
    count,
    json_option,
    note,
    out,
    print_json,
    profile_option,
    public_link,
)

PAGE = 200


def register(subparsers: Any) -> None:
    add_command(subparsers, "shares", run, help="list your shares",
                description="List your shares, one per line: id, item count, expiry, public "
                "link and name.", parents=[profile_option(), json_option()])


def run(args: argparse.Namespace) -> int:
    with connect(args) as cloud:
        shares = list(cloud.iter_pages("shares", count=PAGE))
    if args.json:
        print_json([s.to_json() for s in shares])
        return EXIT_OK
    for s in shares:
        expires = s.expiration_date or "never"
        out(f"{s.uid}  {count(s.total_resource_count, 'item')}  expires {expires}  "
            f"{public_link(s) or '-'}  {s.name or ''}".rstrip())
    if not shares:
        note("no shares; create one with 'vzcloud share PATH'")
    return EXIT_OK
