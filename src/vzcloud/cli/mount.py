"""``vzcloud mount MOUNTPOINT`` and ``vzcloud umount MOUNTPOINT``: the cloud as a local disk.

``mount`` uses a profile (default: the default profile, which ``vzcloud serve`` writes),
loads the account (the first time with one fullview; afterwards from the cache directory
plus the changes since), mounts it with FUSE and keeps it in sync. By default it returns
once the filesystem is mounted, leaving a background process (its log is
``CACHE_DIR/mount.log``); ``--foreground`` stays attached, prints a ready line and logs
to stderr (Ctrl-C unmounts, as ``umount`` does). Under systemd (``Type=notify``) the
foreground mount reports READY once mounted. The first mount of a cache directory loads
the list of all files, with a progress bar for a large account (plain lines when
stderr is not a terminal). A dead vzcloud mount left at the mountpoint by a process that
died is detached first.

Each mount process records itself in ``RUNTIME/mounts/<hash of the mountpoint>.json``
(RUNTIME = ``$XDG_RUNTIME_DIR/vzcloud``, else ``$XDG_CACHE_HOME/vzcloud/run``), so
``umount``, ``status`` and ``refresh`` find it from the mountpoint alone; its control
channel (``vzcloud.fs.control``) is the socket next to it, ``<hash>.sock``. A cache
directory serves one mount at a time (a lock on ``CACHE_DIR/mount.lock``).

``umount`` runs ``fusermount3 -u`` (it fails if the mount is busy: close the files or
leave the directory first) and then waits until the mount process has uploaded
everything still queued and exited, showing the bytes left as a progress bar (a mount started
with another ``XDG_RUNTIME_DIR`` is not found: it is unmounted, and its process drains
the queue on its own).
``umount --force`` detaches the mount lazily (``fusermount3 -u -z``, which works even
when busy) and tells the mount process to stop at once (SIGUSR1) without waiting for the
queue: what is queued stays in the cache directory and the next mount of the same cache
uploads it. Nothing written is dropped either way.

Errors print one line and exit with: 4 no such mountpoint or profile, 3 the profile's
credentials were refused, 1 anything else (mountpoint not empty or already mounted,
cloud unreachable at the first mount, FUSE missing).

Tuning for tests and benchmarks (environment): ``VZCLOUD_CHUNK_THRESHOLD`` and
``VZCLOUD_CHUNK_SIZE`` (bytes) change when and how uploads are chunked.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vzcloud import profiles
from vzcloud.cli import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, CliError
from vzcloud.cli._common import human_size, mountpoint_command, profile_name
from vzcloud.cli._progress import TransferProgress, count_of
from vzcloud.cli._systemd import notify

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
READY = b"ready\n"
LOAD_PROGRESS_MIN = 2000  # files: smaller accounts load without a progress bar


def parse_size(text: str) -> int:
    """``10G``, ``512M``, ``1.5GiB``, ``4096`` -> bytes (powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (like 10G, 512M or 4096)")
    return int(float(m[1]) * _UNITS[m[2].lower()])


def _octal(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal umask (like 022)") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"umask {text!r} is out of range")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def register(subparsers: Any) -> None:
    parser = mountpoint_command(subparsers, "mount", run_mount, __doc__,
                                help="mount the cloud as a local directory (FUSE)",
                                mountpoint_help="an existing empty directory")
    parser.add_argument("--profile", type=profile_name, metavar="NAME",
                        help="profile to use (default: the default profile)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="metadata, cached blocks and the upload queue (default: "
                        "$XDG_CACHE_HOME/vzcloud/PROFILE)")
    parser.add_argument("--cache-size", type=parse_size, default=parse_size("10G"),
                        metavar="SIZE", help="block cache limit (default 10G)")
    parser.add_argument("--foreground", "-f", action="store_true",
                        help="stay in the foreground, logging to stderr")
    parser.add_argument("--uid", type=int, default=os.getuid(),
                        help="owner shown for every file (default: you)")
    parser.add_argument("--gid", type=int, default=os.getgid(),
                        help="group shown for every file (default: your group)")
    parser.add_argument("--umask", type=_octal, default=0o022, metavar="OCTAL",
                        help="permission bits removed from 0777/0666 (default 022)")
    parser.add_argument("--read-only", action="store_true", help="refuse every change")
    parser.add_argument("--allow-other", action="store_true",
                        help="let other users see the mount (needs user_allow_other in "
                        "/etc/fuse.conf unless root)")
    parser.add_argument("--poll-interval", type=_positive, default=15.0, metavar="SECONDS",
                        help="how often to ask the cloud for changes (default 15)")
    # Internal: the daemonizing parent's end of a pipe told "ready" once mounted.
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)

    parser = mountpoint_command(subparsers, "umount", run_umount, __doc__,
                                help="unmount a vzcloud mount, waiting for queued uploads")
    parser.add_argument("--force", action="store_true",
                        help="unmount even if busy and do not wait for queued uploads "
                        "(they are finished by the next mount)")


# Where mount processes are recorded ------------------------------------------------------


def runtime_dir() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        return Path(xdg) / "vzcloud"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vzcloud" / "run"


def pid_file(mountpoint: Path) -> Path:
    digest = hashlib.sha256(str(mountpoint).encode()).hexdigest()[:16]
    return runtime_dir() / "mounts" / f"{digest}.json"


def control_socket(mountpoint: Path) -> Path:
    """The mount's control channel (``vzcloud.fs.control``), next to its record."""
    return pid_file(mountpoint).with_suffix(".sock")


def read_record(mountpoint: Path) -> dict[str, Any] | None:
    """The record of the live mount process of ``mountpoint`` (pid, mountpoint,
    cache_dir, profile, server), None if there is none or its process is gone."""
    return _live_record(pid_file(mountpoint), str(mountpoint))


def not_running(mountpoint: Path) -> CliError:
    """The error for a MOUNTPOINT that has no live mount process (exit 4), saying what
    is there instead: a dead mount to clear, a mount of another user, or nothing."""
    what = f"{mountpoint} is not a running vzcloud mount"
    if _is_dead_vzcloud_mount(mountpoint):
        return CliError(f"{what}: its process stopped and left a dead mount; mount it again "
                        f"('vzcloud mount {mountpoint}' clears it) or clear it with "
                        f"'fusermount3 -u {mountpoint}'", EXIT_NOT_FOUND)
    if mount_type(mountpoint) == "fuse.vzcloud":
        return CliError(f"{what} of this user (it was mounted by another user, or with "
                        "another XDG_RUNTIME_DIR)", EXIT_NOT_FOUND)
    return CliError(f"{what}; see 'vzcloud status' for the mounts there are", EXIT_NOT_FOUND)


def mount_records() -> list[dict[str, Any]]:
    """The records of every live mount of this runtime directory, by mountpoint."""
    records = []
    for path in sorted((runtime_dir() / "mounts").glob("*.json")):
        info = _live_record(path, None)
        if info is not None:
            records.append(info)
    return sorted(records, key=lambda info: str(info["mountpoint"]))


def _live_record(path: Path, mountpoint: str | None) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("mountpoint"), str):
        return None
    if mountpoint is not None and info["mountpoint"] != mountpoint:
        return None
    if not _alive(int(info.get("pid", 0))):
        return None
    return info


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def queued_uploads(cache_dir: Path) -> int | None:
    """Jobs in a cache directory's upload queue (read-only look), None if unreadable."""
    db = cache_dir / "metadata.db"
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM upload_jobs").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


# mount ---------------------------------------------------------------------------------------


def _mountpoint(path: Path) -> Path:
    mp = Path(os.path.abspath(path.expanduser()))
    try:
        st = mp.stat()
    except FileNotFoundError:
        raise CliError(f"mountpoint {mp} does not exist; create it with 'mkdir -p {mp}'",
                       EXIT_NOT_FOUND) from None
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise CliError(f"cannot use {mp}: {exc.strerror}") from None
        st = _clear_dead_mount(mp)
    import stat as stat_mod

    if not stat_mod.S_ISDIR(st.st_mode):
        raise CliError(f"mountpoint {mp} is not a directory")
    if os.path.ismount(mp):
        # The kernel may answer stat from its cache even when the mount is dead.
        if not _is_dead_vzcloud_mount(mp):
            raise CliError(f"{mp} is already mounted; unmount it first ('vzcloud umount "
                           f"{mp}')")
        st = _clear_dead_mount(mp)
    if any(mp.iterdir()):
        raise CliError(f"mountpoint {mp} is not empty; use an empty directory")
    return mp


def mount_type(mountpoint: Path) -> str | None:
    """The filesystem type mounted at ``mountpoint`` (``fuse.vzcloud`` for ours), from
    /proc/self/mountinfo; None if nothing is mounted there."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        fields = line.split(" ")
        # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
        where = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
        if where == str(mountpoint) and "-" in fields:
            found = fields[fields.index("-") + 1]  # the last mount there is on top
    return found


def _is_dead_vzcloud_mount(mp: Path) -> bool:
    """A vzcloud mount at ``mp`` whose process is gone: reading it fails with ENOTCONN.
    (Only looked into when no live mount process has recorded it, so a hung mount of
    ours is never touched.)"""
    if mount_type(mp) != "fuse.vzcloud" or read_record(mp) is not None:
        return False
    try:
        os.listdir(mp)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def _clear_dead_mount(mp: Path) -> os.stat_result:
    """``mp`` is a dead FUSE mount (ENOTCONN: its process is gone). If it was a vzcloud
    mount whose process no longer runs, detach it (as ``fusermount3 -u -z`` would; what
    it had queued is in its cache directory, and the new mount uploads it) and return
    the directory's stat; otherwise fail with a hint."""
    hint = f"clear it with 'fusermount3 -u {mp}'"
    if not _is_dead_vzcloud_mount(mp):
        raise CliError(f"{mp} is a dead mount (transport endpoint is not connected); {hint}")
    done = subprocess.run(["fusermount3", "-u", "-z", str(mp)], capture_output=True, text=True)
    try:
        st = mp.stat()
    except OSError:
        raise CliError(f"{mp} is a dead mount that could not be cleared "
                       f"({' '.join(done.stderr.split()) or 'fusermount3 failed'}); "
                       f"{hint}") from None
    sys.stderr.write(f"vzcloud: cleared the dead mount at {mp} (its process had stopped)\n")
    return st


def _check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise CliError("FUSE is not available (no /dev/fuse); load the fuse module or run "
                       "where FUSE is allowed")
    if shutil.which("fusermount3") is None:
        raise CliError("fusermount3 is missing; install the fuse3 package")


def run_mount(args: argparse.Namespace) -> int:
    mountpoint = _mountpoint(args.mountpoint)
    _check_fuse()
    profile = profiles.load(args.profile)  # ProfileNotFoundError -> exit 4 with a hint
    from vzcloud.fs.mount import default_cache_dir

    cache_dir = Path(os.path.abspath((args.cache_dir or default_cache_dir(profile.name))
                                     .expanduser()))
    if not args.foreground:
        return _daemonize(args, mountpoint, cache_dir, profile.name)
    return _mount_here(args, mountpoint, cache_dir, profile.name)


def _daemonize(args: argparse.Namespace, mountpoint: Path, cache_dir: Path,
               profile_name: str) -> int:
    """Run the mount (``mount --foreground``) in a new session, logging to
    ``CACHE_DIR/mount.log``, and return once it is mounted (or failed)."""
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = cache_dir / "mount.log"
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "vzcloud.cli.main", *(["--debug"] if args.debug else []),
            "mount", str(mountpoint), "--foreground", "--ready-fd", str(write_end),
            "--profile", profile_name, "--cache-dir", str(cache_dir),
            "--cache-size", str(args.cache_size), "--uid", str(args.uid),
            "--gid", str(args.gid), "--umask", f"{args.umask:o}",
            "--poll-interval", str(args.poll_interval),
            *(["--read-only"] if args.read_only else []),
            *(["--allow-other"] if args.allow_other else [])]
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=log,
                                 pass_fds=(write_end,), start_new_session=True)
    os.close(write_end)
    show_loading = LoadDisplay()
    said = b""
    with os.fdopen(read_end, "rb") as pipe:
        # Until "ready" or EOF (the child failed): "loading DONE TOTAL" lines meanwhile.
        for said in pipe:
            if said == READY:
                break
            words = said.split()
            if len(words) == 3 and words[0] == b"loading":
                show_loading(int(words[1]), int(words[2]))
    if said == READY:
        sys.stderr.write(f"vzcloud: mounted at {mountpoint} (pid {child.pid}, log {log_path}); "
                         f"unmount with 'vzcloud umount {mountpoint}'\n")
        return EXIT_OK
    code = child.wait()
    last = _last_error(log_path)
    raise CliError(last or f"the mount process exited with code {code}; see {log_path}",
                   code or EXIT_FAILED)


class LoadDisplay:
    """Shows a first mount loading the whole account (``MountConfig.load_progress``): one
    line when it starts, then, for a large account, a progress bar on a terminal or
    plain lines elsewhere, and the state for systemd (``STATUS=``)."""

    def __init__(self) -> None:
        self.progress: TransferProgress | None = None

    def __call__(self, done: int, total: int) -> None:
        if total < 0:
            sys.stderr.write("vzcloud: first mount of this cache: loading the list of all "
                             "files...\n")
            sys.stderr.flush()
            notify(STATUS="loading the list of all files")
            return
        notify(STATUS=f"loading the list of all files: {done} of {total}")
        if total < LOAD_PROGRESS_MIN:
            return  # over in a moment: a bar would only flicker
        if self.progress is None:
            self.progress = TransferProgress("loading the file list", total,
                                             amount=count_of("file"))
        if done >= total:
            self.progress.finish()
        else:
            self.progress(done, total)


def _last_error(log_path: Path) -> str | None:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines[-50:]):
        if line.startswith("vzcloud: error: "):
            return line.removeprefix("vzcloud: error: ")
    return None


def _lock_cache(cache_dir: Path) -> int:
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(cache_dir / "mount.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CliError(f"the cache directory {cache_dir} is in use by another mount; "
                       "unmount it or pick another --cache-dir") from None
    return fd


def _mount_here(args: argparse.Namespace, mountpoint: Path, cache_dir: Path,
                profile_name: str) -> int:
    import trio

    from vzcloud import AsyncCloud, logging_setup
    from vzcloud.api import errors as E
    from vzcloud.fs.core import MountOptions
    from vzcloud.fs.mount import MountConfig, MountError, run_mount
    from vzcloud.fs.remote import CloudRemote
    from vzcloud.sdk.flows import RetryPolicy

    logging_setup.setup("debug" if args.debug else "info")
    lock_fd = _lock_cache(cache_dir)
    cloud = AsyncCloud.from_profile(profile_name)
    # Bounded retries: a read the cache cannot serve fails with EIO within seconds
    # when the cloud is unreachable (the upload queue retries on its own, forever).
    cloud.retry = RetryPolicy(max_attempts=4, base_delay=0.25, max_delay=2.0, max_total=10.0)
    for env, attr in (("VZCLOUD_CHUNK_THRESHOLD", "chunk_threshold"),
                      ("VZCLOUD_CHUNK_SIZE", "chunk_size")):
        if os.environ.get(env):
            setattr(cloud, attr, parse_size(os.environ[env]))
    record = pid_file(mountpoint)

    def tell_parent_loading(done: int, total: int) -> None:
        try:
            os.write(args.ready_fd, f"loading {done} {total}\n".encode())
        except OSError:
            pass  # the parent is gone: nobody to tell

    config = MountConfig(
        mountpoint=mountpoint, cache_dir=cache_dir, cache_size=args.cache_size,
        poll_interval=args.poll_interval, allow_other=args.allow_other,
        options=MountOptions(uid=args.uid, gid=args.gid, umask=args.umask,
                             read_only=args.read_only),
        control_socket=control_socket(mountpoint),
        load_progress=tell_parent_loading if args.ready_fd is not None else LoadDisplay(),
    )

    def ready() -> None:
        record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        profiles.write_private(record, json.dumps({
            "pid": os.getpid(), "mountpoint": str(mountpoint), "cache_dir": str(cache_dir),
            "profile": profile_name, "server": cloud.base_url,
        }).encode())
        notify(READY=1, STATUS=f"mounted {cloud.base_url} (profile {profile_name}) at "
               f"{mountpoint}")
        sys.stderr.write(f"vzcloud: mounted {cloud.base_url} (profile {profile_name}) at "
                         f"{mountpoint}, cache {cache_dir}; unmount with 'vzcloud umount "
                         f"{mountpoint}' or Ctrl-C\n")
        sys.stderr.flush()
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, READY)
                os.close(args.ready_fd)
            except OSError:
                pass  # the parent is gone: nobody to tell

    async def main() -> int:
        async with cloud:
            return await run_mount(config, CloudRemote(cloud), ready=ready)

    try:
        left = trio.run(main)
    except MountError as exc:
        raise CliError(str(exc)) from None
    except (E.NetworkError, E.ServerError) as exc:
        raise CliError(f"cannot reach the cloud at {cloud.base_url}: "
                       f"{exc.description or exc.error}; start it ('vzcloud serve') or "
                       "check the network") from None
    except RuntimeError as exc:
        if "fuse_session" in str(exc):
            raise CliError(f"cannot mount {mountpoint}: {exc}; see the lines above") from None
        raise
    finally:
        record.unlink(missing_ok=True)
        os.close(lock_fd)
    sys.stderr.write(f"vzcloud: unmounted {mountpoint}"
                     + (f"; {left} upload(s) stay queued for the next mount\n" if left else "\n"))
    return EXIT_OK


# umount --------------------------------------------------------------------------------------


def run_umount(args: argparse.Namespace) -> int:
    mountpoint = Path(os.path.abspath(args.mountpoint.expanduser()))
    info = read_record(mountpoint)
    mounted = _is_mounted(mountpoint)
    if not mounted and info is None:
        raise CliError(f"{mountpoint} is not mounted", EXIT_NOT_FOUND)
    if mounted:
        cmd = ["fusermount3", "-u", "-z", str(mountpoint)] if args.force else \
              ["fusermount3", "-u", str(mountpoint)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            why = " ".join(done.stderr.split()) or f"exit code {done.returncode}"
            hint = ("; close the files open there (and leave the directory), or use "
                    "--force" if "busy" in why.lower() else "")
            raise CliError(f"cannot unmount {mountpoint}: {why}{hint}")
    if info is None:
        sys.stderr.write(f"vzcloud: unmounted {mountpoint}\n")
        return EXIT_OK
    pid = int(info["pid"])
    cache_dir = Path(info.get("cache_dir", ""))
    if args.force:
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
        _wait_exit(pid, timeout=10)
        left = queued_uploads(cache_dir) or 0
        sys.stderr.write(f"vzcloud: unmounted {mountpoint} (forced)"
                         + (f"; {left} upload(s) stay queued for the next mount of "
                            f"{cache_dir}\n" if left else "\n"))
        return EXIT_OK
    return _wait_for_uploads(pid, mountpoint, cache_dir)


def _is_mounted(mountpoint: Path) -> bool:
    try:
        return os.path.ismount(mountpoint)
    except OSError:
        return True  # a dead mount (ENOTCONN) still needs unmounting


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_for_uploads(pid: int, mountpoint: Path, cache_dir: Path) -> int:
    """Wait for the mount process to drain its queue and exit, showing what is left: a
    line when waiting starts, then the bytes uploaded as a bar on a terminal or plain
    lines elsewhere (asked over the control channel; without it, the count of uploads
    left, read from the cache directory)."""
    progress: TransferProgress | None = None
    shown: int | None = None
    last_shown = 0.0
    try:
        while _alive(pid):
            left, left_bytes = _queue_left(control_socket(mountpoint), cache_dir)
            if left and left_bytes is not None:
                if progress is None:
                    sys.stderr.write(f"vzcloud: waiting for {left} queued upload(s) "
                                     f"({human_size(left_bytes)})...\n")
                    progress = TransferProgress("uploading queued files", left_bytes)
                total = max(progress.total, left_bytes)
                progress(total - left_bytes, total)
            elif left and (left != shown or time.monotonic() - last_shown > 10):
                sys.stderr.write(f"vzcloud: waiting for {left} queued upload(s)...\n")
                shown, last_shown = left, time.monotonic()
            sys.stderr.flush()
            time.sleep(0.2)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        sys.stderr.write(f"vzcloud: stopped waiting; the mount process (pid {pid}) goes on "
                         "uploading in the background\n")
        return 130
    left = queued_uploads(cache_dir) or 0
    if progress is not None and not left:
        progress.finish()
    elif progress is not None:
        progress.close()
    if left:
        sys.stderr.write(f"vzcloud: unmounted {mountpoint}; {left} upload(s) stay queued for "
                         "the next mount\n")
        return EXIT_FAILED
    sys.stderr.write(f"vzcloud: unmounted {mountpoint}; all uploads finished\n")
    return EXIT_OK


def _queue_left(socket_path: Path, cache_dir: Path) -> tuple[int, int | None]:
    """Uploads still queued and their bytes, from the mount itself; when its control
    channel does not answer, the count from its cache directory and None."""
    from vzcloud.fs.control import ControlError, request

    try:
        uploads = request(socket_path, "status", timeout=2)["status"]["uploads"]
        return int(uploads["queued"]), int(uploads["queued_bytes"])
    except (ControlError, KeyError, TypeError, ValueError):
        return queued_uploads(cache_dir) or 0, None
