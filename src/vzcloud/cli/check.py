"""``vzcloud check [MOUNTPOINT] [--profile P] [--cache-dir DIR] [--repair]``: is a mount's
cache consistent with the cloud?

Compares an unmounted cache directory (metadata, cached blocks, upload queue) with the
cloud's whole fullview and prints one line per difference (see ``vzcloud.fs.check``).
The cache directory is ``--cache-dir``, else the profile's default one (as ``vzcloud
mount`` picks it). MOUNTPOINT only guards: if a mount is running there, or on the cache
directory, the check is refused (unmount first). ``--repair`` re-applies the whole
fullview to the metadata (queued local changes are kept) and deletes orphan jobs,
staging files and blocks, then checks again.

Exit codes: 0 consistent; 1 differences found (the last line says whether they were
repaired), or the check could not run (cache in use, cloud unreachable); 3 credentials
refused; 4 no such profile or cache directory.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from vzcloud.cli import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, CliError
from vzcloud.cli._common import (
    chosen_profile,
    count,
    load_profile,
    mountpoint_command,
    out,
    profile_option,
)
from vzcloud.cli.mount import _lock_cache, read_record


def register(subparsers: Any) -> None:
    parser = mountpoint_command(
        subparsers, "check", run, __doc__,
        help="compare an unmounted cache with the cloud (and --repair it)",
        mountpoint_help="refuse if a mount runs here", optional=True,
        parents=[profile_option()])
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="the cache directory (default: the profile's)")
    parser.add_argument("--repair", action="store_true",
                        help="fix the metadata from the cloud and drop orphans")


def run(args: argparse.Namespace) -> int:
    import trio

    from vzcloud import AsyncCloud, logging_setup
    from vzcloud.api import errors as E
    from vzcloud.fs.check import check_cache
    from vzcloud.fs.mount import default_cache_dir
    from vzcloud.fs.remote import CloudRemote

    logging_setup.setup("debug" if args.debug else "warning")
    if args.mountpoint is not None:
        mountpoint = Path(os.path.abspath(args.mountpoint.expanduser()))
        if read_record(mountpoint) is not None:
            raise CliError(f"{mountpoint} is mounted; unmount it first "
                           f"('vzcloud umount {mountpoint}')")
    name = chosen_profile(args)
    profile = load_profile(name)
    cache_dir = Path(os.path.abspath((args.cache_dir or default_cache_dir(profile.name))
                                     .expanduser()))
    if not (cache_dir / "metadata.db").exists():
        raise CliError(f"{cache_dir} is not a mount's cache directory (no metadata.db)",
                       EXIT_NOT_FOUND)
    lock_fd = _lock_cache(cache_dir)  # refuses while a mount uses it

    async def main() -> Any:
        async with AsyncCloud.from_profile(name) as cloud:
            return await check_cache(cache_dir, CloudRemote(cloud), repair=args.repair)

    try:
        result = trio.run(main)
    except E.NetworkError as exc:
        raise CliError(f"cannot reach {profile.server} ({exc.description}); the check "
                       "needs the cloud") from None
    finally:
        os.close(lock_fd)
    for line in result.problems:
        out(line)
    if not result.problems:
        out(f"{cache_dir}: consistent with the cloud")
        return EXIT_OK
    if result.repaired and not result.remaining:
        out(f"{count(len(result.problems), 'difference')} found and repaired")
    elif result.repaired:
        for line in result.remaining:
            out(f"still: {line}")
        out(f"{count(len(result.problems), 'difference')} found; "
            f"{len(result.remaining)} remain after the repair")
    else:
        out(f"{count(len(result.problems), 'difference')} found; not repaired "
            "(run again with --repair)")
    return EXIT_FAILED
