"""``vzcloud admin``: users, clients and tokens of an embedded cloud, without a browser.

    vzcloud admin [--data DIR] user add NAME [--password-stdin] [--quota BYTES]
    vzcloud admin [--data DIR] client add --redirect-uri URI [--name NAME]
    vzcloud admin [--data DIR] token USER --client ID

Each works on the data directory directly (default: the one of ``vzcloud serve``), so no
server needs to run; a running one is fine (SQLite in WAL mode). The directory must
already hold a cloud (``vzcloud serve --data DIR`` creates one): a mistyped path fails
with exit 4 instead of creating an empty cloud. Results are printed as JSON on stdout,
secrets included: they are shown only this once (the cloud keeps only their hashes).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzcloud.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CliError, add_command
from vzcloud.cli.serve import default_data_dir

if TYPE_CHECKING:
    from vzcloud.server.admin import OfflineCloud

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """``1073741824``, ``500M``, ``10G`` or ``1T`` (binary units) -> bytes."""
    m = re.fullmatch(r"(\d{1,16})\s*([KMGT]?)(?:i?B)?", text.strip(), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1073741824, 500M or 10G")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def register(subparsers: Any) -> None:
    admin = add_command(subparsers, "admin", None,
                        help="manage users, clients and tokens of an embedded cloud",
                        description=__doc__)
    data_help = "data directory of the cloud (default: $XDG_DATA_HOME/vzcloud/cloud)"
    admin.add_argument("--data", type=Path, metavar="DIR", help=data_help)
    # --data is also accepted after the subcommand; SUPPRESS keeps an earlier one.
    data_option = argparse.ArgumentParser(add_help=False)
    data_option.add_argument("--data", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                             help=data_help)
    groups = admin.add_subparsers(title="objects", metavar="OBJECT")

    user = add_command(groups, "user", None, help="user accounts")
    user_actions = user.add_subparsers(title="actions", metavar="ACTION")
    p = add_command(user_actions, "add", user_add, parents=[data_option],
                    help="create a user (prints its password unless given with "
                    "--password-stdin)")
    p.add_argument("name", help="login name (no spaces)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    p.add_argument("--quota", type=parse_bytes, metavar="BYTES",
                   help="storage quota, like 10G (default 50G)")

    client = add_command(groups, "client", None, help="OAuth clients (applications)")
    client_actions = client.add_subparsers(title="actions", metavar="ACTION")
    p = add_command(client_actions, "add", client_add, parents=[data_option],
                    help="register a client (prints its id and secret)")
    p.add_argument("--redirect-uri", required=True, metavar="URI",
                   help="the one redirect URI the client may use, like "
                   "http://127.0.0.1:8977/callback")
    p.add_argument("--name", default="", help="shown on the sign-in page")

    p = add_command(groups, "token", token, parents=[data_option],
                    help="issue fresh tokens for a user (as JSON)")
    p.add_argument("user", help="login name")
    p.add_argument("--client", required=True, metavar="ID", help="client id")


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def _open(args: argparse.Namespace) -> AbstractContextManager[OfflineCloud]:
    from vzcloud.server import admin

    data_dir = (args.data or default_data_dir()).expanduser().absolute()
    if not (data_dir / admin.DATABASE_NAME).is_file():
        raise CliError(f"no embedded cloud in {data_dir}; pass the right --data, or create "
                       f"one with 'vzcloud serve --data {data_dir}'", EXIT_NOT_FOUND)
    return admin.open_data_dir(data_dir)


def user_add(args: argparse.Namespace) -> int:
    from vzcloud.server import admin

    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: the first line of stdin is empty; pipe a "
                           "password in", EXIT_USAGE)
    with _open(args) as cloud:
        account, password_used = admin.create_user(cloud, args.name, password, args.quota)
    out: dict[str, Any] = {"username": account.username, "user_id": account.user_id,
                           "quota": account.quota}
    if password is None:
        out["password"] = password_used
    _print(out)
    return EXIT_OK


def client_add(args: argparse.Namespace) -> int:
    from vzcloud.server import admin

    with _open(args) as cloud:
        client = admin.create_client(cloud, args.redirect_uri, name=args.name)
    _print({"client_id": client.client_id, "client_secret": client.client_secret,
            "redirect_uri": client.redirect_uri, "name": args.name})
    return EXIT_OK


def token(args: argparse.Namespace) -> int:
    from vzcloud.server import admin

    with _open(args) as cloud:
        issued = admin.tokens_for(cloud, args.user, args.client)
    _print(issued.to_json())
    return EXIT_OK
