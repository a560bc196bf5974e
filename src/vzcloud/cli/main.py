"""Entry point of the ``vzcloud`` command: parse, run the command, map failures to exit
codes (the table is in ``vzcloud.cli``)."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from vzcloud import cli
from vzcloud.api import errors as E
from vzcloud.cli import EXIT_AUTH, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CliError
from vzcloud.profiles import ProfileError, ProfileNotFoundError


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="vzcloud",
        description="Personal Cloud Storage on Linux: an embedded cloud server, profiles and "
        "(soon) a FUSE mount.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 authentication, 4 not found. "
        "Run 'vzcloud COMMAND --help' for a command's options.",
    )
    parser.add_argument("--debug", action="store_true", default=False,
                        help="log everything and show tracebacks of failures")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in cli.command_modules():
        module.register(subparsers)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _failure(exc: BaseException) -> tuple[int, str]:
    """The exit code and message for an exception that escaped a command."""
    if isinstance(exc, CliError):
        return exc.code, exc.message
    if isinstance(exc, ProfileNotFoundError):
        return EXIT_NOT_FOUND, f"{exc}; run 'vzcloud serve' to create a local one"
    if isinstance(exc, ProfileError):
        return EXIT_FAILED, f"{exc}; fix or delete the profile file"
    if isinstance(exc, E.UnauthorizedError):
        return EXIT_AUTH, f"not authorized: {exc.description or exc.error}; sign in again"
    if isinstance(exc, E.NotFoundError):
        return EXIT_NOT_FOUND, exc.description or exc.error
    if isinstance(exc, E.CloudError):
        return EXIT_FAILED, exc.description or exc.error
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return EXIT_FAILED, f"{exc.strerror or exc}{where}"
    return EXIT_FAILED, (f"internal error: {type(exc).__name__}: {exc}; "
                         "rerun with --debug to see the traceback")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        # No command, or a command group (like 'admin') without its subcommand.
        (getattr(args, "command_parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args))
    except KeyboardInterrupt:
        sys.stderr.write("vzcloud: interrupted\n")
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        code, message = _failure(exc)
        sys.stderr.write(f"vzcloud: error: {_one_line(message)}\n")
        return code


if __name__ == "__main__":
    sys.exit(main())
