"""The ``vzcloud`` command.

Usage: ``vzcloud [--debug] COMMAND ...``; ``vzcloud COMMAND --help`` describes each one.

Exit codes (every command):

==  ==========================================================================
0   success
1   the operation failed (I/O error, server error, conflict, internal error)
2   usage error: bad arguments or options
3   authentication failed: missing, expired or revoked credentials
4   not found: no such profile, data directory, user, client, file or folder
==  ==========================================================================

A failure prints one line on stderr, ``vzcloud: error: <cause>; <what to do>``, and no
traceback unless ``--debug`` is given (which also turns logging up to DEBUG).
Interrupted by Ctrl-C: exit 130 (``vzcloud serve`` treats SIGINT and SIGTERM as a normal
stop and exits 0).

Adding a command: create one module ``vzcloud/cli/<name>.py`` defining
``register(subparsers)``, which calls ``add_command(subparsers, name, run, help=...)``
and adds its arguments to the parser it returns. ``run(args) -> int`` does the work and
returns the exit code; it raises ``CliError`` (or a ``CloudError`` / ``ProfileError``,
mapped to their codes by ``main``) to fail. Modules are discovered by name, so nothing
else changes. Import heavy dependencies (the server, FUSE) inside ``run``, because every
module is imported for every invocation to build the parser.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4

Runner = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure to report as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def _debug_option() -> argparse.ArgumentParser:
    # Accepted after the command name too; SUPPRESS keeps an earlier --debug in place.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="log everything and show tracebacks of failures")
    return parent


def add_command(
    subparsers: Any, name: str, run: Runner | None, *, help: str, description: str | None = None,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Add command ``name`` (its parser is returned); ``run`` is called with the parsed
    arguments. A command with subcommands passes ``run=None`` and adds them under it.
    ``parents`` are option sets shared by several commands (``add_help=False`` parsers)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        # Docstrings double as descriptions; their ``literal`` markup reads badly in --help.
        name, help=help, description=(description or help).replace("``", ""), parents=[_debug_option(), *parents],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if run is not None:
        parser.set_defaults(run=run)
    else:
        parser.set_defaults(run=None, command_parser=parser)
    return parser


def command_modules() -> list[ModuleType]:
    """Every module of this package that defines ``register``, in name order."""
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            modules.append(module)
    return modules
