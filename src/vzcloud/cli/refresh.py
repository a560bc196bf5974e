"""``vzcloud refresh MOUNTPOINT``: make a mount pick up the cloud's changes now.

A mount asks the cloud for changes every ``--poll-interval`` seconds. ``refresh`` asks
it (over its control channel) to do so at once and returns when the changes are
applied, so what other devices changed is visible in MOUNTPOINT when it returns.
Sending the mount process SIGHUP does the same without waiting.

Exit codes: 0 synced; 4 MOUNTPOINT is not a running vzcloud mount; 1 the sync did not
complete (the cloud is unreachable, say: the mount keeps trying on its own).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vzcloud.cli import EXIT_FAILED, EXIT_OK, CliError
from vzcloud.cli._common import mountpoint_command
from vzcloud.cli.mount import control_socket, not_running, read_record

WAIT_SECONDS = 45.0  # longer than the mount's own limit (fs.control.REFRESH_TIMEOUT)


def register(subparsers: Any) -> None:
    mountpoint_command(subparsers, "refresh", run, __doc__,
                       help="make a mount fetch the cloud's changes now",
                       mountpoint_help="a vzcloud mount")


def run(args: argparse.Namespace) -> int:
    from vzcloud.fs.control import ControlError, request

    mountpoint = Path(os.path.abspath(args.mountpoint.expanduser()))
    if read_record(mountpoint) is None:
        raise not_running(mountpoint)
    try:
        request(control_socket(mountpoint), "refresh", timeout=WAIT_SECONDS)
    except ControlError as exc:
        raise CliError(f"{mountpoint} did not sync: {exc}; the mount keeps trying on its "
                       "own ('vzcloud status' shows its recent errors)", EXIT_FAILED) from None
    sys.stderr.write(f"vzcloud: {mountpoint} is up to date with the cloud\n")
    return EXIT_OK
