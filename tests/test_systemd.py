"""System integration: the systemd units, scripts/install-systemd, the mount(8) helper
(``mount.fuse.vzcloud``) mounting and unmounting for real, fstab lines (with
``x-systemd.automount``), sd_notify and journal logging."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mount_harness import (
    MOUNT_TIMEOUT,
    PROFILE,
    mounted,
    require_fuse,
    start_cloud,
    stop_cloud,
    write_profile,
)
from vzcloud.cli import _mount_helper as helper
from vzcloud.cli._systemd import notify
from vzcloud.cli.mount import mount_type

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "systemd").glob("*.service"))
VZCLOUD = Path(sys.executable).parent / "vzcloud"


def _install(tmp: Path) -> tuple[Path, Path]:
    """scripts/install-systemd into tmp: (unit directory, sbin directory)."""
    units, sbin = tmp / "units", tmp / "sbin"
    done = subprocess.run([ROOT / "scripts" / "install-systemd", "--vzcloud", str(VZCLOUD),
                           "--unit-dir", str(units), "--sbin-dir", str(sbin)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return units, sbin


# Unit files ---------------------------------------------------------------------------------

# What the units may use; anything else is a typo (systemd would only warn and ignore it).
KNOWN_KEYS = {
    "Unit": {"Description", "Documentation", "After", "Before", "Wants", "Requires",
             "StartLimitIntervalSec", "StartLimitBurst"},
    "Service": {"Type", "NotifyAccess", "Environment", "EnvironmentFile", "ExecStartPre",
                "ExecStart", "ExecStop", "TimeoutStopSec", "Restart", "RestartSec"},
    "Install": {"WantedBy"},
}
ENUMS = {"Type": {"simple", "exec", "forking", "oneshot", "notify", "dbus", "idle"},
         "NotifyAccess": {"none", "main", "exec", "all"},
         "Restart": {"no", "on-success", "on-failure", "on-abnormal", "on-watchdog",
                     "on-abort", "always"}}
TIME_SPAN = re.compile(r"^(infinity|(\d+(us|ms|s|min|h|d|w)?\s*)+)$")
SPECIFIERS = set("iIhEnNuUp%")


def strict_unit_errors(path: Path) -> list[str]:
    """Our own strict reading of a unit file: sections, known keys, enumerations, time
    spans, specifiers, Exec commands, required keys. An empty list: nothing wrong."""
    errors: list[str] = []
    section = None
    seen: dict[str, set[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{path.name}:{number}"
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            errors.append(f"{where}: continuation lines are not used here")
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            section = header[1]
            if section not in KNOWN_KEYS:
                errors.append(f"{where}: unknown section [{section}]")
            seen.setdefault(section, set())
            continue
        key, eq, value = line.partition("=")
        if section is None or not eq or key != key.strip():
            errors.append(f"{where}: not KEY=VALUE inside a section: {line!r}")
            continue
        if key not in KNOWN_KEYS.get(section, set()):
            errors.append(f"{where}: unknown key {key} in [{section}]")
        seen[section].add(key)
        if key in ENUMS and value not in ENUMS[key]:
            errors.append(f"{where}: {key}={value} is not one of {sorted(ENUMS[key])}")
        if key.endswith(("Sec",)) and not TIME_SPAN.match(value):
            errors.append(f"{where}: {key}={value} is not a time span")
        for spec in re.findall(r"%(.)", value):
            if spec not in SPECIFIERS:
                errors.append(f"{where}: unknown specifier %{spec}")
        if key.startswith("Exec"):
            command = value.lstrip("-@:+!").split()[0]
            if not (command.startswith("/") or re.fullmatch(r"[\w.-]+", command)):
                errors.append(f"{where}: {command!r} is neither a path nor a command name")
        if value.count("${") != value.count("}"):
            errors.append(f"{where}: unbalanced ${{...}}")
    for section, key in (("Unit", "Description"), ("Service", "ExecStart"),
                         ("Install", "WantedBy")):
        if key not in seen.get(section, set()):
            errors.append(f"{path.name}: [{section}] has no {key}")
    return errors


def test_units_are_valid_as_shipped_and_as_installed(tmp_path: Path) -> None:
    assert [u.name for u in UNITS] == ["vzcloud-mount@.service", "vzcloud-serve.service"]
    units, sbin = _install(tmp_path)
    installed = sorted(units.glob("*.service"))
    assert [u.name for u in installed] == [u.name for u in UNITS]
    for unit in [*UNITS, *installed]:
        assert strict_unit_errors(unit) == [], unit
    # Installed units run this vzcloud by its full path (systemd does not search PATH).
    for unit in installed:
        execs = [line for line in unit.read_text().splitlines()
                 if line.startswith(("ExecStart=", "ExecStop="))]
        assert execs and all(line.split("=", 1)[1].startswith(f"{VZCLOUD} ") for line in execs)

    analyze = shutil.which("systemd-analyze")
    # scripts/bootstrap installs systemd, so the real verifier is always there to ask.
    assert analyze is not None, "systemd-analyze is missing (apt package systemd)"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    # A template is verified through an instance; --user: these are user units.
    done = subprocess.run(
        [analyze, "verify", "--user", str(units / "vzcloud-mount@alice.service"),
         str(units / "vzcloud-serve.service")],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, capture_output=True, text=True,
        timeout=60)
    # Unknown keys are only warnings (exit 0): any output at all is a failure.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_strict_check_catches_mistakes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.service"
    broken.write_text("[Unit]\nDescription=x\n[Service]\nType=notfiy\nExecStart=vzcloud %q\n"
                      "RestartSec=soon\nRestrat=always\n")
    errors = "\n".join(strict_unit_errors(broken))
    for expected in ("Type=notfiy", "unknown specifier %q", "RestartSec=soon",
                     "unknown key Restrat", "[Install] has no WantedBy"):
        assert expected in errors


def test_fstab_line_with_automount_generates_valid_units(tmp_path: Path) -> None:
    """systemd's own fstab generator turns our documented fstab line into a .mount and a
    .automount unit, which systemd-analyze accepts."""
    generator = Path("/usr/lib/systemd/system-generators/systemd-fstab-generator")
    analyze = shutil.which("systemd-analyze")
    assert generator.exists() and analyze is not None, \
        "systemd's fstab generator is missing (apt package systemd)"
    fstab = tmp_path / "fstab"
    fstab.write_text("alice  /home/alice/Cloud  fuse.vzcloud  noauto,x-systemd.automount,"
                     "_netdev,setuid=alice  0  0\n")
    out = [tmp_path / d for d in ("normal", "early", "late")]
    for d in out:
        d.mkdir()
    subprocess.run([generator, *map(str, out)], env={**os.environ, "SYSTEMD_FSTAB": str(fstab)},
                   check=True, capture_output=True, timeout=30)
    mount_unit = out[0] / "home-alice-Cloud.mount"
    assert "Type=fuse.vzcloud" in mount_unit.read_text()
    assert (out[0] / "home-alice-Cloud.automount").exists()
    done = subprocess.run([analyze, "verify", str(mount_unit),
                           str(out[0] / "home-alice-Cloud.automount")],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# sd_notify and the journal -----------------------------------------------------------------


def test_notify_writes_to_the_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            ) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify(READY=1, STATUS="mounted")
        assert listener.recv(1024) == b"READY=1\nSTATUS=mounted\n"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify(READY=1)  # not under systemd: nothing to do, no error


@MOUNT_TIMEOUT
def test_foreground_mount_says_ready_to_systemd_and_logs_for_the_journal(tmp_path: Path,
                                                                          ) -> None:
    """What Type=notify and the journal see: READY=1 once mounted, and log lines without
    timestamps, with syslog priorities, when $JOURNAL_STREAM names stderr."""
    env = start_cloud(tmp_path)
    try:
        path = tmp_path / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(path))
            listener.settimeout(30)
            stderr_file = tmp_path / "mnt" / "mount.stderr"  # the harness's log file
            stderr_file.parent.mkdir()
            stderr_file.touch()
            st = stderr_file.stat()
            # The harness sends the mount's stderr to that file: name it as the journal.
            extra = {"NOTIFY_SOCKET": str(path), "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
            with mounted(env, extra_env=extra) as mnt:
                messages = [listener.recv(4096).decode()]
                while "READY=1" not in messages[-1]:
                    messages.append(listener.recv(4096).decode())
                assert os.path.ismount(mnt.path)
        # While the first mount loads the account, STATUS says so; then READY.
        assert messages[0] == "STATUS=loading the list of all files\n"
        assert messages[-1].startswith(f"READY=1\nSTATUS=mounted {env.server.url} "
                                       f"(profile {PROFILE}) at {mnt.path}")
        lines = mnt.stderr().splitlines()
        assert "<6>vzcloud.fs.mount: mounted at " + str(mnt.path) in lines
        assert not any(re.match(r"\d{4}-\d\d-\d\d ", line) for line in lines)
    finally:
        stop_cloud(env)


# The mount(8) helper ----------------------------------------------------------------------


def test_helper_turns_mount_options_into_vzcloud_mount_arguments() -> None:
    request = helper.parse([
        "alice", "/home/alice/Cloud", "-n", "-o",
        "rw,noauto,x-systemd.automount,x-systemd.idle-timeout=60,_netdev,nofail,uid=1000,"
        "gid=100,umask=027,allow_other,cache_dir=/var/cache/vz,cache_size=2G,"
        "poll_interval=30,config_dir=/etc/vz,setuid=alice,comment=systemd.automount",
        "-t", "fuse.vzcloud"])
    assert (request.profile, request.mountpoint) == ("alice", "/home/alice/Cloud")
    assert request.mount_args == ["--uid", "1000", "--gid", "100", "--umask", "027",
                                  "--allow-other", "--cache-dir", "/var/cache/vz",
                                  "--cache-size", "2G", "--poll-interval", "30"]
    assert (request.config_dir, request.setuid) == ("/etc/vz", "alice")
    ro = helper.parse(["vzcloud#work", "/mnt", "-o", "ro", "-fv"])
    assert (ro.profile, ro.mount_args, ro.fake, ro.verbose) == ("work", ["--read-only"],
                                                                True, True)
    with pytest.raises(helper.UsageError, match="unknown option 'compress=yes'"):
        helper.parse(["alice", "/mnt", "-o", "compress=yes"])
    assert helper.parse(["alice", "/mnt", "-s", "-o", "compress=yes"]).mount_args == []
    with pytest.raises(helper.UsageError, match="expected PROFILE and MOUNTPOINT"):
        helper.parse(["/mnt"])


@MOUNT_TIMEOUT
def test_helper_mounts_and_unmounts(tmp_path: Path) -> None:
    """The installed helper, run as mount(8) runs it, mounts for real; umount unmounts
    and the mount process uploads what was written before it exits."""
    require_fuse()
    env = start_cloud(tmp_path)
    try:
        _, sbin = _install(tmp_path)
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        write_profile(tmp_path / "config", env)
        process_env = {**os.environ, "VZCLOUD_CONFIG_DIR": str(tmp_path / "config"),
                       "XDG_RUNTIME_DIR": str(tmp_path)}
        options = (f"rw,noauto,x-systemd.automount,_netdev,umask=027,poll_interval=2,"
                   f"cache_dir={tmp_path / 'cache'}")

        def run_helper(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sbin / "mount.fuse.vzcloud", PROFILE, str(mountpoint),
                                   *extra], env=process_env, capture_output=True, text=True,
                                  timeout=60)

        bad = run_helper("-o", "rw,compress=yes")
        assert bad.returncode == 1 and "unknown option 'compress=yes'" in bad.stderr
        fake = run_helper("-f", "-o", options)
        assert fake.returncode == 0 and not os.path.ismount(mountpoint)

        done = run_helper("-o", options)
        try:
            assert done.returncode == 0, done.stderr
            assert mount_type(mountpoint) == "fuse.vzcloud"
            assert oct((mountpoint / "VZMOBILE").stat().st_mode & 0o777) == oct(0o750)
            (mountpoint / "VZMOBILE" / "via-helper.txt").write_bytes(b"mounted by mount(8)")
        finally:
            unmount = ["umount"] if os.geteuid() == 0 else ["fusermount3", "-u"]
            gone = subprocess.run([*unmount, str(mountpoint)], capture_output=True, text=True)
        assert gone.returncode == 0, gone.stderr
        assert not os.path.ismount(mountpoint)
        env.wait_cloud_bytes("/VZMOBILE/via-helper.txt", b"mounted by mount(8)")
        _wait_for_exit(tmp_path / "vzcloud" / "mounts")
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(tmp_path / "mnt")], capture_output=True)
        stop_cloud(env)


def _wait_for_exit(records: Path, timeout: float = 30) -> None:
    """Until the mount process has removed its record (it does so as it exits)."""
    deadline = time.monotonic() + timeout
    while any(records.glob("*.json")):
        assert time.monotonic() < deadline, "the mount process did not exit"
        time.sleep(0.1)


NAMESPACE_SCRIPT = r"""
set -eu
# Everything below happens in a private mount namespace (unshare -m): the helper appears
# in the directory mount(8) searches only here, on an overlay over the real one.
sbin=$(readlink -f /sbin)
mkdir -p "$WORK/ovl"
mount -t tmpfs none "$WORK/ovl"
mkdir "$WORK/ovl/up" "$WORK/ovl/work"
mount -t overlay overlay -o "lowerdir=$sbin,upperdir=$WORK/ovl/up,workdir=$WORK/ovl/work" "$sbin"
cp -P "$HELPERS"/mount.fuse.vzcloud "$HELPERS"/mount.vzcloud "$sbin"/

# The documented command line.
mount -t fuse.vzcloud "$PROFILE" "$MNT" -o "poll_interval=2,cache_dir=$WORK/cache1"
grep -q " $MNT .* - fuse.vzcloud " /proc/self/mountinfo
echo "by type" > "$MNT/VZMOBILE/by-type.txt"
umount "$MNT"

# An fstab line, as systemd's automount unit mounts it (mount WHERE reads the line).
echo "$PROFILE $MNT fuse.vzcloud noauto,x-systemd.automount,_netdev,umask=077,cache_dir=$WORK/cache2 0 0" > "$WORK/fstab"
mount -T "$WORK/fstab" "$MNT"
stat -c %a "$MNT/VZMOBILE" > "$WORK/mode"
echo "by fstab" > "$MNT/VZMOBILE/by-fstab.txt"
umount "$MNT"
"""


@MOUNT_TIMEOUT
def test_mount_t_fuse_vzcloud_and_an_fstab_line(tmp_path: Path) -> None:
    """mount(8) itself: ``mount -t fuse.vzcloud PROFILE DIR -o ...`` and ``mount DIR``
    from an fstab line with x-systemd.automount, then ``umount``. Needs root, for
    unshare and to put the helper where mount(8) looks (in a private namespace only)."""
    require_fuse()
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mount -t fuse.vzcloud needs root (the helper lives in /sbin)")
    env = start_cloud(tmp_path)
    try:
        _, sbin = _install(tmp_path)
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        write_profile(tmp_path / "config", env)
        done = subprocess.run(
            ["unshare", "-m", "bash", "-c", NAMESPACE_SCRIPT],
            env={**os.environ, "VZCLOUD_CONFIG_DIR": str(tmp_path / "config"),
                 "XDG_RUNTIME_DIR": str(tmp_path), "WORK": str(tmp_path), "MNT": str(mountpoint),
                 "HELPERS": str(sbin), "PROFILE": PROFILE},
            capture_output=True, text=True, timeout=80)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "mode").read_text().strip() == "700"
        env.wait_cloud_bytes("/VZMOBILE/by-type.txt", b"by type\n")
        env.wait_cloud_bytes("/VZMOBILE/by-fstab.txt", b"by fstab\n")
        _wait_for_exit(tmp_path / "vzcloud" / "mounts")
    finally:
        stop_cloud(env)


@MOUNT_TIMEOUT
def test_a_restart_after_a_crash_clears_the_dead_mount(tmp_path: Path) -> None:
    """What Restart=on-failure relies on: after the mount process was killed, its dead
    mount (ENOTCONN) does not stop the next `vzcloud mount` of that directory."""
    require_fuse()
    env = start_cloud(tmp_path)
    mountpoint = tmp_path / "mnt"
    try:
        mountpoint.mkdir()
        write_profile(tmp_path / "config", env)
        process_env = {**os.environ, "VZCLOUD_CONFIG_DIR": str(tmp_path / "config"),
                       "XDG_RUNTIME_DIR": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
        command = [sys.executable, "-m", "vzcloud.cli.main", "mount", str(mountpoint)]
        crashing = subprocess.Popen([*command, "--foreground"], env=process_env,
                                    stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            assert time.monotonic() < deadline and crashing.poll() is None
            time.sleep(0.1)
        crashing.kill()
        crashing.wait()
        with pytest.raises(OSError) as dead:
            os.listdir(mountpoint)
        assert dead.value.errno == errno.ENOTCONN
        status = subprocess.run([*command[:-2], "status", str(mountpoint)], env=process_env,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 4
        assert "its process stopped and left a dead mount" in status.stderr

        again = subprocess.run(command, env=process_env, capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 0, again.stderr
        assert f"cleared the dead mount at {mountpoint}" in again.stderr
        assert (mountpoint / "VZMOBILE").is_dir()
        done = subprocess.run([*command[:-2], "umount", str(mountpoint)], env=process_env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
        stop_cloud(env)
