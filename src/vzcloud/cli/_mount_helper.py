"""``mount.fuse.vzcloud``: the mount(8) helper, so ``mount -t fuse.vzcloud PROFILE DIR``
and /etc/fstab lines mount a vzcloud profile.

mount(8) looks for ``/sbin/mount.<type>`` and runs it as::

    mount.fuse.vzcloud PROFILE DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]

``scripts/install-systemd --system`` installs a two-line wrapper under that name (and
``mount.vzcloud``, for ``-t vzcloud``) that runs ``python -m vzcloud.cli._mount_helper``.
The helper turns the options into ``vzcloud mount DIR --profile PROFILE ...`` and runs
it; mount(8) returns once the filesystem is mounted (the mount process stays in the
background, logging to ``CACHE_DIR/mount.log``). Unmount with ``umount DIR`` (as root)
or ``vzcloud umount DIR``.

Options (``-o``, comma-separated):

=====================  ==============================================================
``uid=N``, ``gid=N``   owner and group shown for every file (default: who mounts)
``umask=OCTAL``        permission bits removed (default 022)
``ro`` / ``rw``        read-only / read-write (the default)
``allow_other``        let other users in (non-root: needs user_allow_other in
                       /etc/fuse.conf)
``cache_dir=DIR``      cache directory (default ``~/.cache/vzcloud/PROFILE``)
``cache_size=SIZE``    block cache limit, like ``10G``
``poll_interval=S``    seconds between two looks for the cloud's changes
``config_dir=DIR``     where the profile is (``VZCLOUD_CONFIG_DIR``)
``setuid=USER``        run the mount as USER (only root may): USER's profile, cache
                       and runtime directory, files owned by USER. fstab lines are
                       mounted by root, so this is how they mount a user's profile.
=====================  ==============================================================

Ignored, because they are mount(8)'s or systemd's: ``x-*`` (``x-systemd.automount``,
...), ``_netdev``, ``auto``, ``noauto``, ``nofail``, ``user``, ``users``, ``nouser``,
``owner``, ``group``, ``defaults``, ``comment=*``, and the generic flags ``dev``,
``nodev``, ``suid``, ``nosuid``, ``exec``, ``noexec``, ``atime``, ``noatime``,
``relatime``, ``diratime``, ``nodiratime``, ``sync``, ``async`` (FUSE sets its own).
Any other option is an error (exit 1), unless ``-s`` (sloppy) is given. ``-f`` (fake)
checks the arguments and mounts nothing; ``-v`` prints the command run; ``-n`` is
accepted and ignored (there is no /etc/mtab to write).

Exit codes follow mount(8): 0 mounted, 1 bad arguments or permissions, 32 the mount
failed (the one-line reason is on stderr).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from vzcloud.cli import EXIT_USAGE as CLI_EXIT_USAGE

EXIT_USAGE = 1
EXIT_MOUNT_FAILED = 32

IGNORED = {
    "_netdev", "auto", "noauto", "nofail", "user", "users", "nouser", "owner", "group",
    "defaults", "rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime",
    "noatime", "relatime", "diratime", "nodiratime", "sync", "async",
}
# option -> the ``vzcloud mount`` flag taking its value
VALUED = {"uid": "--uid", "gid": "--gid", "umask": "--umask", "cache_dir": "--cache-dir",
          "cache_size": "--cache-size", "poll_interval": "--poll-interval"}
FLAGS = {"ro": "--read-only", "allow_other": "--allow-other"}


class UsageError(Exception):
    pass


@dataclass
class Request:
    """What mount(8) asked for, as ``vzcloud mount`` arguments."""

    profile: str
    mountpoint: str
    mount_args: list[str] = field(default_factory=list)
    config_dir: str | None = None
    setuid: str | None = None
    fake: bool = False
    verbose: bool = False


def parse(argv: Sequence[str]) -> Request:
    """mount(8)'s helper arguments -> a Request; UsageError says what is wrong."""
    positional: list[str] = []
    options: list[str] = []
    flags = ""
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-o", "-t", "-N"):
            if not args:
                raise UsageError(f"{arg} needs a value")
            value = args.pop(0)
            if arg == "-o":
                options.extend(value.split(","))
        elif arg.startswith("-o") and len(arg) > 2:
            options.extend(arg[2:].split(","))
        elif arg.startswith("-") and len(arg) > 1:
            unknown = set(arg[1:]) - set("sfnvrw")
            if unknown:
                raise UsageError(f"unknown flag {arg}")
            flags += arg[1:]
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise UsageError("expected PROFILE and MOUNTPOINT")
    source, mountpoint = positional
    # fstab's old FUSE form: "vzcloud#PROFILE"
    profile = source.split("#", 1)[1] if source.startswith("vzcloud#") else source
    request = Request(profile, mountpoint, fake="f" in flags, verbose="v" in flags)
    sloppy = "s" in flags
    if "r" in flags:
        request.mount_args.append("--read-only")
    for option in options:
        name, has_value, value = option.partition("=")
        if not name or name in IGNORED or name.startswith("x-") or name == "comment":
            continue
        if name in FLAGS and not has_value:
            if FLAGS[name] not in request.mount_args:
                request.mount_args.append(FLAGS[name])
        elif name in VALUED and has_value and value:
            request.mount_args += [VALUED[name], value]
        elif name == "config_dir" and value:
            request.config_dir = value
        elif name == "setuid" and value:
            request.setuid = value
        elif not sloppy:
            raise UsageError(f"unknown option {option!r}")
    return request


def _become(user: str, env: dict[str, str]) -> None:
    """Drop root for ``user`` (a name or a number): groups, gid, uid and the environment
    a login of that user would have (HOME, USER, its runtime directory)."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"setuid={user}: no such user") from None
    if os.getuid() == pw.pw_uid:
        return
    if os.getuid() != 0:
        raise UsageError(f"setuid={user}: only root may mount as another user")
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR",
                 "VZCLOUD_CONFIG_DIR", "VZCLOUD_PROFILE"):
        env.pop(name, None)
    env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
    runtime = f"/run/user/{pw.pw_uid}"
    if os.path.isdir(runtime) and os.stat(runtime).st_uid == pw.pw_uid:
        env["XDG_RUNTIME_DIR"] = runtime


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ)
    try:
        request = parse(argv)
        if request.setuid is not None:
            _become(request.setuid, env)
    except UsageError as exc:
        sys.stderr.write(f"mount.fuse.vzcloud: {exc} (usage: mount -t fuse.vzcloud PROFILE "
                         "MOUNTPOINT [-o OPTIONS])\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"mount.fuse.vzcloud: cannot switch user: {exc.strerror or exc}\n")
        return EXIT_USAGE
    if request.config_dir is not None:
        env["VZCLOUD_CONFIG_DIR"] = request.config_dir
    command = [sys.executable, "-m", "vzcloud.cli.main", "mount", request.mountpoint,
               "--profile", request.profile, *request.mount_args]
    if request.verbose:
        sys.stderr.write("mount.fuse.vzcloud: running " + " ".join(command) + "\n")
    if request.fake:
        return 0
    # mount(8) waits for `vzcloud mount`, which returns once mounted (or failed, having
    # said why on stderr); its exit codes become mount(8)'s.
    try:
        code = subprocess.run(command, env=env, stdin=subprocess.DEVNULL).returncode
    except OSError as exc:
        sys.stderr.write(f"mount.fuse.vzcloud: cannot run {sys.executable}: {exc.strerror}\n")
        return EXIT_MOUNT_FAILED
    if code == 0:
        return 0
    return EXIT_USAGE if code == CLI_EXIT_USAGE else EXIT_MOUNT_FAILED

if __name__ == "__main__":
    sys.exit(main())
