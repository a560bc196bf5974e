"""``vzcloud account``: the signed-in account and how much of its quota is used."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, human_size, json_option, out, print_json, profile_option


def register(subparsers: Any) -> None:
    add_command(subparsers, "account", run, help="show the account and its storage quota",
                description="Show the account id and its storage use: used, free and total "
                "(binary units: 1 GiB = 1024 MiB).",
                parents=[profile_option(), json_option()])


def run(args: argparse.Namespace) -> int:
    with connect(args) as cloud:
        account = cloud.account()
    if args.json:
        print_json({"id": account.id, "quota": account.quota, "quota_used": account.quota_used})
        return EXIT_OK
    share = f" ({account.quota_used * 100 / account.quota:.1f}%)" if account.quota else ""
    out(f"account {account.id}")
    out(f"used    {human_size(account.quota_used)} of {human_size(account.quota)}{share}")
    out(f"free    {human_size(max(0, account.quota - account.quota_used))}")
    return EXIT_OK
