"""``vzcloud mkdir``: create a cloud folder."""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud.api import errors as E
from vzcloud.api import paths as P
from vzcloud.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, add_command
from vzcloud.cli._common import connect, item_path, out, profile_option


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "mkdir", run, help="create a cloud folder",
                    description="Create a cloud folder inside a virtual folder (like "
                    "/VZMOBILE/docs). Its parent must exist, unless -p is given.",
                    parents=[profile_option()])
    p.add_argument("path", type=item_path, metavar="PATH", help="the new folder, like /VZMOBILE/docs")
    p.add_argument("-p", "--parents", action="store_true",
                   help="create missing parent folders too; an existing folder is fine")


def run(args: argparse.Namespace) -> int:
    parts = P.split_path(args.path)
    if len(parts) < 2:
        raise CliError(f"{args.path} would be a virtual folder; create folders inside one, like "
                       f"/VZMOBILE/{parts[0]}", EXIT_USAGE)
    hint = (f"is the virtual folder /{parts[0]} right? list them with 'vzcloud ls'"
            if args.parents else "create the parent folders too with 'mkdir -p'")
    with connect(args, not_found=hint) as cloud:
        if args.parents:
            # Virtual folders (depth 1) are not created here: a missing one is a 404.
            for depth in range(2, len(parts) + 1):
                cloud.create_folder(P.join(parts[:depth]), override="modify")
        else:
            try:
                cloud.create_folder(args.path)
            except E.ConflictError:
                raise CliError(f"{args.path} exists already; 'mkdir -p' accepts an existing "
                               "folder", EXIT_FAILED) from None
    out(f"created {args.path}")
    return EXIT_OK
