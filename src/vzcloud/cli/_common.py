"""What the everyday commands (account, ls, get, put, ...) share.

- ``profile_option()``: the ``--profile NAME`` option, accepted before and after a
  subcommand (``vzcloud playlist --profile x show UID`` and ``... show UID --profile x``).
- ``mountpoint_command(...)``: a command about a mount (mount, umount, status, check,
  refresh): a MOUNTPOINT argument, the module docstring as its --help description.
- ``connect(args)``: the profile's ``vzcloud.Cloud`` as a context manager. Every
  ``CloudError`` escaping the block becomes a one-line ``CliError`` with its exit code
  and a hint of what to do: 401 -> 3 (sign in again), 404 -> 4, 400 -> 2 (the server
  refused an argument we passed through from the command line), network -> 1 (check the
  connection), anything else -> 1.
  It also sets up logging: warnings only, everything with ``--debug``.
- argparse types: ``cloud_path`` (``VZMOBILE/a`` is taken as ``/VZMOBILE/a``), ``item_path``
  (not the root), ``profile_name``.
- Output: results go to stdout (``out``, ``print_json``), remarks to stderr (``note``);
  ``human_size``, ``count``, ``display_path``, ``listing_json``, ``public_link``.
- ``transfer_target``: where ``mv``/``cp`` put an item.

This module is not a command (its name starts with ``_``, so discovery skips it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzcloud import profiles
from vzcloud.api import errors as E
from vzcloud.api import paths as P
from vzcloud.cli import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    Runner,
    add_command,
)

if TYPE_CHECKING:
    from vzcloud.api.models import CloudFile, CloudFolder, Share
    from vzcloud.sdk import Cloud

DEFAULT_VIRTUAL_FOLDER = "VZMOBILE"


# Arguments --------------------------------------------------------------------------------


def profile_name(text: str) -> str:
    """argparse type: a valid profile name."""
    try:
        return profiles.check_name(text)
    except profiles.ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def profile_option() -> argparse.ArgumentParser:
    """A parent parser with ``--profile``. SUPPRESS as default, so a value given before a
    subcommand is not reset by the subcommand's parser; read it with ``chosen_profile``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--profile", type=profile_name, metavar="NAME", default=argparse.SUPPRESS,
                        help="profile to use (default: the default profile, see "
                        "'vzcloud profiles')")
    return parent


def mountpoint_command(
    subparsers: Any, name: str, run: Runner, module_doc: str | None, *, help: str,
    mountpoint_help: str | None = None, optional: bool = False,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Add command ``name`` (its parser is returned) with one ``MOUNTPOINT`` argument (a
    Path; may be left out when ``optional``). Its --help description is ``module_doc``
    without the first paragraph, the usage line argparse prints itself."""
    description = module_doc.split("\n\n", 1)[1] if module_doc else None
    parser = add_command(subparsers, name, run, help=help, description=description,
                         parents=parents)
    parser.add_argument("mountpoint", type=Path, nargs="?" if optional else None,
                        metavar="MOUNTPOINT", help=mountpoint_help)
    return parser


def json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true",
                        help="print JSON (the API's field names) instead of text")
    return parent


def chosen_profile(args: argparse.Namespace) -> str:
    """The profile named with ``--profile``, else the default one."""
    name = getattr(args, "profile", None)
    return name if name else profiles.default_name()


def cloud_path(text: str) -> str:
    """argparse type: a cloud path in canonical form; the leading ``/`` may be left out."""
    if not text.startswith("/"):
        text = "/" + text
    try:
        return P.normalize(text)
    except E.BadRequestError as exc:
        raise argparse.ArgumentTypeError(exc.description) from None


def item_path(text: str) -> str:
    """argparse type: a cloud path of a file or folder (not the root ``/``)."""
    path = cloud_path(text)
    if path == "/":
        raise argparse.ArgumentTypeError("'/' is the root; name a file or folder, like "
                                         "/VZMOBILE/notes.txt")
    return path


# Talking to the cloud ----------------------------------------------------------------------


def load_profile(name: str) -> profiles.Profile:
    """Profile ``name``; a missing one is a CliError saying how to create it."""
    try:
        return profiles.load(name)
    except profiles.ProfileNotFoundError:
        raise CliError(f"no profile {name!r}; sign in with 'vzcloud login --profile {name}' "
                       "(or run 'vzcloud serve' for a local cloud)", EXIT_NOT_FOUND) from None


@contextmanager
def connect(args: argparse.Namespace, *, not_found: str = "check the path with 'vzcloud ls'",
            conflict: str = "pick another name, or remove what is in the way first",
            ) -> Iterator[Cloud]:
    """The client of the chosen profile (a signed-out one is exit 3 at once); CloudErrors
    of the block become one-line CliErrors (see the module docstring). ``not_found`` and
    ``conflict`` are the hints added to a 404 and a 409."""
    from vzcloud import logging_setup
    from vzcloud.sdk import Cloud

    logging_setup.setup("debug" if args.debug else "warning")
    name = chosen_profile(args)
    profile = load_profile(name)
    if not profile.access_token and not profile.refresh_token:
        raise CliError(f"profile {name!r} is signed out; sign in with "
                       f"'vzcloud login --profile {name}'", EXIT_AUTH)
    try:
        with Cloud.from_profile(name) as cloud:
            yield cloud
    except E.UnauthorizedError as exc:
        raise CliError(f"{profile.server} refused the credentials of profile {name!r} "
                       f"({describe(exc)}); sign in again with "
                       f"'vzcloud login --profile {name}'", EXIT_AUTH) from exc
    except E.NotFoundError as exc:
        raise CliError(f"{describe(exc)}; {not_found}", EXIT_NOT_FOUND) from exc
    except E.ConflictError as exc:
        raise CliError(f"{describe(exc)}; {conflict}", EXIT_FAILED) from exc
    except E.BadRequestError as exc:
        raise CliError(f"{describe(exc)}; check the arguments "
                       "(see --help)", EXIT_USAGE) from exc
    except E.QuotaExceededError as exc:
        raise CliError(f"{describe(exc)}; free space ('vzcloud trash empty', "
                       "'vzcloud rm --purge') and try again", EXIT_FAILED) from exc
    except E.NetworkError as exc:
        raise CliError(f"cannot reach {profile.server} ({exc.description}); check the "
                       "connection, or the profile's server with 'vzcloud profiles'",
                       EXIT_FAILED) from exc
    except E.CloudError as exc:
        status = f" (HTTP {exc.status})" if exc.status else ""
        raise CliError(f"the cloud failed: {describe(exc)}{status}; try again "
                       "later, or rerun with --debug", EXIT_FAILED) from exc


def describe(exc: E.CloudError) -> str:
    """The human part of a CloudError: its description, else its error code."""
    return exc.description or exc.error


# Output -------------------------------------------------------------------------------------


def human_size(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ``20.0 MiB``: binary units, one decimal from KiB up."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def count(n: int, noun: str) -> str:
    """``1 item``, ``3 items``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def out(line: str = "") -> None:
    """A line of the command's result, on stdout."""
    sys.stdout.write(line + "\n")


def note(line: str) -> None:
    """A remark that is not the result (a count, a hint), on stderr."""
    sys.stderr.write(f"vzcloud: {line}\n")


def display_path(item: CloudFile | CloudFolder) -> str:
    """An item's path as listings show it: folders end with ``/``."""
    from vzcloud.api.models import CloudFolder

    return item.path + "/" if isinstance(item, CloudFolder) else item.path


def listing_json(folders: list[CloudFolder], files: list[CloudFile]) -> dict[str, Any]:
    """``{"folders": [...], "files": [...]}`` with each item's wire JSON."""
    return {"folders": [f.to_json() for f in folders], "files": [f.to_json() for f in files]}


def transfer_target(cloud: Cloud, src: str, dst: str) -> str:
    """Where ``mv``/``cp`` put ``src`` for ``dst``: inside ``dst`` (same name) when it is an
    existing folder, else at ``dst`` itself (a new name, or a file to replace)."""
    from vzcloud.api.models import CloudFolder, join_path

    try:
        existing = cloud.file_metadata(dst)
    except E.NotFoundError:
        return dst
    if isinstance(existing, CloudFolder):
        return join_path(dst, P.parent_and_name(src)[1])
    return dst


def public_link(share: Share) -> str | None:
    """The public link of a share (its ``rel="public"`` link), if the server sent one."""
    return next((link.link for link in share.links if link.rel == "public"), None)
