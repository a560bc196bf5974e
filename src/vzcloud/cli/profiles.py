"""``vzcloud profiles``: list the saved profiles, or choose the default one.

    vzcloud profiles [list]        one line each: '*' marks the default, then name,
                                   server and whether it is signed in
    vzcloud profiles default NAME  use NAME when a command gets no --profile

Profiles live in $VZCLOUD_CONFIG_DIR, else $XDG_CONFIG_HOME/vzcloud (~/.config/vzcloud);
$VZCLOUD_PROFILE overrides the default for one shell.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from vzcloud import profiles
from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import load_profile, note, out, profile_name


def register(subparsers: Any) -> None:
    group = add_command(subparsers, "profiles", list_profiles, description=__doc__,
                        help="list profiles or choose the default one")
    actions = group.add_subparsers(title="actions", metavar="ACTION")
    add_command(actions, "list", list_profiles, help="list the profiles (the default action)")
    p = add_command(actions, "default", set_default, help="choose the default profile")
    p.add_argument("name", type=profile_name, metavar="NAME")


def list_profiles(args: argparse.Namespace) -> int:
    names = profiles.list_profiles()
    if not names:
        note(f"no profiles in {profiles.config_dir()}; create one with 'vzcloud login' (or "
             "'vzcloud serve' for a local cloud)")
        return EXIT_OK
    default = profiles.default_name()
    width = max(len(n) for n in names)
    for name in names:
        try:
            p = profiles.load(name)
        except profiles.ProfileError as exc:
            state, server = f"unreadable: {exc}", "-"
        else:
            server = p.server
            state = "signed in" if p.access_token or p.refresh_token else "signed out"
        out(f"{'*' if name == default else ' '} {name:<{width}}  {server}  {state}")
    return EXIT_OK


def set_default(args: argparse.Namespace) -> int:
    load_profile(args.name)  # must exist (and be readable)
    profiles.set_default(args.name)
    out(f"the default profile is now {args.name!r}")
    if os.environ.get("VZCLOUD_PROFILE", args.name) != args.name:
        note(f"$VZCLOUD_PROFILE={os.environ['VZCLOUD_PROFILE']} still overrides it in this shell")
    return EXIT_OK
