"""``vzcloud status [MOUNTPOINT]``: what running mounts are doing.

With MOUNTPOINT: that mount's profile, server, state, last sync and its age, the upload
queue (how many files and bytes, which ones keep failing and their last errors), the
block cache (size and hit rate) and the last warnings, as the mount process itself
reports them over its control channel. Without: every mount running for you (the
records under the runtime directory, see ``vzcloud mount --help``), then whether the
default profile's server answers and accepts its credentials.

``--json`` prints the same as JSON: the mount's object with MOUNTPOINT; without,
``{"mounts": [...], "default_profile": {...}}``. Times are epoch seconds, sizes bytes.

Exit codes: 0 the report was made (an unreachable server is part of the report); 4
MOUNTPOINT is not a running vzcloud mount; 1 the mount does not answer.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path
from typing import Any

from vzcloud import profiles
from vzcloud.cli import EXIT_FAILED, EXIT_OK, CliError
from vzcloud.cli._common import (
    count,
    human_size,
    json_option,
    mountpoint_command,
    out,
    print_json,
)
from vzcloud.cli.mount import control_socket, mount_records, not_running, read_record

CHECK_SECONDS = 5.0  # the server check waits this long for an answer
ERRORS_SHOWN = 5  # recent warnings in the text report (--json has them all)


def register(subparsers: Any) -> None:
    mountpoint_command(subparsers, "status", run, __doc__,
                       help="show running mounts: sync, upload queue, cache, errors",
                       mountpoint_help="a vzcloud mount (default: all of them)",
                       optional=True, parents=[json_option()])


def run(args: argparse.Namespace) -> int:
    if args.mountpoint is not None:
        mountpoint = Path(os.path.abspath(args.mountpoint.expanduser()))
        info = read_record(mountpoint)
        if info is None:
            raise not_running(mountpoint)
        report = mount_report(info)
        if args.json:
            print_json(report)
        else:
            _print_mount(report, time.time())
        if report.get("error"):
            raise CliError(f"the mount at {mountpoint} does not answer: {report['error']}; "
                           f"its log is {report.get('cache_dir')}/mount.log (or the journal)",
                           EXIT_FAILED)
        return EXIT_OK
    reports = [mount_report(info) for info in mount_records()]
    server = server_report()
    if args.json:
        print_json({"mounts": reports, "default_profile": server})
        return EXIT_OK
    now = time.time()
    if not reports:
        out("no vzcloud mounts running")
    for report in reports:
        _print_mount(report, now)
        out()
    _print_server(server)
    return EXIT_OK


def mount_report(info: dict[str, Any]) -> dict[str, Any]:
    """A mount's record (profile, server, pid, ...) merged with what its control channel
    says; ``error`` says why the channel did not answer (None when it did)."""
    from vzcloud.fs.control import ControlError, request

    report: dict[str, Any] = {key: info.get(key) for key in (
        "mountpoint", "profile", "server", "pid", "cache_dir")}
    path = control_socket(Path(info["mountpoint"]))
    report["socket"] = str(path)
    try:
        report.update(request(path, "status")["status"])
        report["error"] = None
    except ControlError as exc:
        report["error"] = str(exc)
    return report


def server_report() -> dict[str, Any]:
    """Whether the default profile's server answers (``reachable``) and accepts its
    credentials (``signed_in``), with the account's user and quota when it does."""
    from vzcloud.api import errors as E
    from vzcloud.sdk import Cloud
    from vzcloud.sdk.flows import RetryPolicy

    name = profiles.default_name()
    report: dict[str, Any] = {"profile": name, "server": None, "reachable": None,
                              "signed_in": None, "error": None}
    try:
        profile = profiles.load(name)
    except profiles.ProfileError as exc:
        report["error"] = f"{exc}; sign in with 'vzcloud login' or run 'vzcloud serve'"
        return report
    report["server"] = profile.server
    result: dict[str, Any] = {}

    def check() -> None:
        try:
            with Cloud.from_profile(name) as cloud:
                cloud.retry = RetryPolicy(max_attempts=1)
                account = cloud.account()
            result.update(reachable=True, signed_in=True, account=account.id,
                          used=account.quota_used, quota=account.quota)
        except E.UnauthorizedError as exc:
            result.update(reachable=True, signed_in=False,
                          error=f"credentials refused ({exc.description or exc.error}); "
                          f"sign in again with 'vzcloud login --profile {name}'")
        except E.NetworkError as exc:
            result.update(reachable=False, error=exc.description or exc.error)
        except E.CloudError as exc:
            result.update(reachable=True, error=exc.description or exc.error)

    # A thread with a deadline: an unreachable host must not hold the report for the
    # client's full connect timeout.
    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(CHECK_SECONDS)
    if worker.is_alive():
        result.update(reachable=False, error=f"no answer within {CHECK_SECONDS:.0f} s")
    report.update(result)
    return report


# Text -------------------------------------------------------------------------------------


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _print_mount(r: dict[str, Any], now: float) -> None:
    out(f"{r['mountpoint']}")
    out(f"  profile:    {r.get('profile')} ({r.get('server')})")
    out(f"  process:    pid {r.get('pid')}, cache {r.get('cache_dir')}")
    if r.get("error"):
        out(f"  control:    no answer ({r['error']})")
        return
    out(f"  state:      {r['state']}{', read-only' if r.get('read_only') else ''}")
    sync = r["sync"]
    if sync["last_sync"] is None:
        out(f"  last sync:  none yet (every {sync['poll_interval']:g} s)")
    else:
        out(f"  last sync:  {_clock(sync['last_sync'])} ({_ago(now - sync['last_sync'])}; "
            f"every {sync['poll_interval']:g} s)")
    up = r["uploads"]
    line = f"{count(up['queued'], 'file')} queued ({human_size(up['queued_bytes'])})"
    if up["failing"]:
        line += f", {up['failing']} failing"
    out(f"  uploads:    {line}; {up['uploaded']} uploaded since mounted")
    for job in up["jobs"]:
        attempts = f", {count(job['attempts'], 'failed attempt')}: {job['last_error']}" \
            if job["attempts"] else ""
        out(f"    {job['path'] or '(deleted)'}  {human_size(job['size'])}{attempts}")
    if up["queued"] > len(up["jobs"]):
        out(f"    ... and {up['queued'] - len(up['jobs'])} more")
    cache = r["cache"]
    rate = "no reads yet" if cache["hit_rate"] is None else (
        f"hit rate {cache['hit_rate']:.0%} ({cache['hits']} hits, {cache['misses']} misses)")
    out(f"  cache:      {human_size(cache['bytes'])} of {human_size(cache['limit'])}; {rate}")
    errors = r["recent_errors"]
    if not errors:
        out("  errors:     none")
        return
    out(f"  errors:     {count(len(errors), 'recent warning')}"
        + (f", the last {ERRORS_SHOWN}:" if len(errors) > ERRORS_SHOWN else ":"))
    for e in errors[-ERRORS_SHOWN:]:
        out(f"    {_clock(e['time'])} {e['level'].lower()}: {e['message']}")


def _print_server(s: dict[str, Any]) -> None:
    name = s["profile"]
    if s["server"] is None:
        out(f"default profile {name}: {s['error']}")
        return
    if s.get("signed_in"):
        state = (f"reachable, signed in (account {s['account']}, {human_size(s['used'])} "
                 f"of {human_size(s['quota'])} used)")
    elif s.get("reachable"):
        state = f"reachable, but {s['error']}"
    else:
        state = f"unreachable ({s['error']})"
    out(f"default profile {name}: {s['server']} {state}")
