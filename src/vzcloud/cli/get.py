"""``vzcloud get``: download a cloud file.

The file is streamed into a hidden ``.NAME.vzcloud-part`` next to the destination and
renamed over it only once complete and checked against the cloud's SHA-256, so an
interrupted download never leaves a truncated file under the real name; running the same
``get`` again resumes the partial file where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vzcloud.cli import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CliError, add_command
from vzcloud.cli._common import connect, human_size, item_path, out, profile_option
from vzcloud.cli._progress import TransferProgress

PART_SUFFIX = ".vzcloud-part"


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "get", run, help="download a cloud file",
                    description=__doc__,
                    parents=[profile_option()])
    p.add_argument("remote", type=item_path, metavar="REMOTE",
                   help="cloud file, like /VZMOBILE/notes.txt")
    p.add_argument("local", nargs="?", metavar="LOCAL",
                   help="local file or existing directory (default: the file's name in the "
                   "current directory); '-' writes to stdout")


def partial_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}{PART_SUFFIX}")


def _destination(local: str | None, name: str) -> Path:
    if local is None:
        return Path.cwd() / name
    dest = Path(local)
    return dest / name if dest.is_dir() else dest


def run(args: argparse.Namespace) -> int:
    from vzcloud.api.models import CloudFolder

    with connect(args, not_found="list the folder with 'vzcloud ls'") as cloud:
        meta = cloud.file_metadata(args.remote)
        if isinstance(meta, CloudFolder):
            raise CliError(f"{args.remote} is a folder; get downloads one file (see its files "
                           f"with 'vzcloud ls {args.remote}')", EXIT_USAGE)
        if args.local == "-":
            cloud.download(args.remote, sys.stdout.buffer)
            sys.stdout.flush()
            return EXIT_OK
        dest = _destination(args.local, meta.name)
        part = partial_path(dest)
        progress = TransferProgress(args.remote, meta.size)
        try:
            cloud.download(args.remote, part, progress=progress)
            progress.finish()
            os.replace(part, dest)
        except OSError as exc:
            code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_FAILED
            raise CliError(f"cannot write {dest}: {exc.strerror}; check the local path "
                           "(LOCAL)", code) from exc
        finally:
            progress.close()
    out(f"downloaded {args.remote} ({human_size(meta.size)}) to {dest}")
    return EXIT_OK
