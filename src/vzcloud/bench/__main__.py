"""``python -m vzcloud.bench`` (``scripts/bench``): see the package docstring.

Order of a run: build the data set on disk and in a new embedded cloud; start the cloud
(a child process), the two vzcloud mounts, rclone (serve + mount) and note how long
each took; then for each workload, ``--repeat`` times, run it against every system in
turn (the order rotates from one repetition to the next, so drifting machine load does
not always hit the same system), following the mount process's peak RSS (and, with
``--py-spy DIR``, profiling the vzcloud mount). Everything is torn down at the end,
and the work directory removed unless ``--keep``.

``python -m vzcloud.bench serve DATA_DIR`` is the embedded cloud's child process: it
prints one JSON line (``url``, ``pid``) once listening and serves until terminated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from vzcloud.bench import dataset, measure, report
from vzcloud.bench.systems import EmbeddedCloud, Local, Rclone, System, VzCloud, rclone_version
from vzcloud.bench.workloads import WORKLOADS, Ctx, WrongResult


def serve(data_dir: Path) -> None:
    import asyncio

    from vzcloud.server.app import CloudServer
    from vzcloud.server.config import ServerConfig
    from vzcloud.server.runner import bind, make_server

    cloud = CloudServer(ServerConfig(data_dir=data_dir))
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    print(json.dumps({"url": f"http://{host}:{port}", "pid": os.getpid()}), flush=True)
    asyncio.run(make_server(cloud).serve(sockets=[sock]))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def find_rclone(install: bool) -> str | None:
    """rclone's path; installed with apt-get when missing, allowed and possible."""
    exe = shutil.which("rclone")
    if exe or not install:
        return exe
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say("bench: rclone is not installed (a Debian package: apt-get install rclone); "
            "running without it")
        return None
    say("bench: installing rclone (apt-get install rclone) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "-q", "rclone"], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(["apt-get", "install", "-y", "-q", "rclone"], env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        say(f"bench: installing rclone failed; running without it:\n{done.stderr[-500:]}")
    return shutil.which("rclone")


def check_fuse() -> None:
    missing = [what for what, ok in (("/dev/fuse", os.path.exists("/dev/fuse")),
                                     ("fusermount3", shutil.which("fusermount3") is not None))
               if not ok]
    if missing:
        sys.exit(f"bench: FUSE is not usable here ({' and '.join(missing)} missing)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="The vzcloud mount against a local directory and "
        "rclone (webdav + rclone mount --vfs-cache-mode full): one run, one table.",
        epilog=f"workloads: {', '.join(WORKLOADS)}. " + doc.split("\n\n")[1].replace("\n", " "))
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for a quick check that everything works")
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="runs of each workload per system; medians are shown (default 3)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these workloads (repeatable or comma-separated)")
    parser.add_argument("--systems", default="vzcloud,local,rclone",
                        help="systems to run (default: vzcloud,local,rclone)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument("--work-dir", type=Path, default=Path("/var/tmp"), metavar="DIR",
                        help="where the data set and caches go (a disk, not tmpfs: the local "
                        "directory is one of the systems; default /var/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install rclone when it is missing")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="profile the vzcloud mount and the embedded cloud with py-spy "
                        "during each workload (collapsed stacks and a summary per workload "
                        "and process in DIR; the sampling costs some CPU)")
    args = parser.parse_args(argv)
    args.only = [n for item in args.only for n in item.split(",") if n]
    unknown = [n for n in args.only if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; pick from {', '.join(WORKLOADS)}")
    args.systems = [s for s in args.systems.split(",") if s]
    if not set(args.systems) <= set(report.SYSTEM_ORDER) or not args.systems:
        parser.error(f"--systems picks from {', '.join(report.SYSTEM_ORDER)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        serve(Path(argv[1]))
        return 0
    args = parse_args(argv)
    check_fuse()
    names = args.only or list(WORKLOADS)
    sizes = dataset.only_needed(dataset.QUICK if args.quick else dataset.FULL, names)
    rclone = find_rclone(not args.no_install) if "rclone" in args.systems else None
    if "rclone" in args.systems and rclone is None:
        args.systems.remove("rclone")
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if args.py_spy and not py_spy:
        sys.exit("bench: --py-spy needs py-spy (pip install py-spy)")
    notes: list[str] = []
    if not measure.can_drop_caches():
        notes.append("page caches were NOT dropped (not root): cold figures are not cold")
        say(f"bench: {notes[-1]}")

    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vzcloud-bench-", dir=args.work_dir))
    machine = measure.machine()
    say(f"bench: {machine['nproc']} CPUs, {machine['memory_gib']} GiB, load average "
        f"{machine['load_average_start']}; work directory {work}")
    setup: dict[str, float] = {}
    config = {
        "quick": args.quick, "repeat": args.repeat, "workloads": names,
        "sizes": sizes.__dict__, "setup_seconds": setup,
        "rclone": (rclone_version(rclone) if rclone else None),
        "rclone_mount_options": list(Rclone.MOUNT_OPTIONS) if rclone else None,
        "caches_dropped": measure.can_drop_caches(),
    }
    results = report.Results([m for n in names for m in WORKLOADS[n].metrics(sizes)], [],
                             notes=notes)

    def save() -> None:
        """The JSON so far (after each workload, so an interrupted run keeps its figures)."""
        machine["load_average_end"] = [round(x, 2) for x in measure.load_average()]
        if results.loads:
            machine["load_average_1min_during_runs"] = [min(results.loads), max(results.loads)]
        config["systems"] = results.systems
        if args.json:
            args.json.write_text(json.dumps(report.to_json(results, machine, config),
                                            indent=2) + "\n")

    systems: list[System] = []
    cloud: EmbeddedCloud | None = None
    try:
        started = time.perf_counter()
        ds = dataset.build_local(sizes, work)
        setup["build data set on disk"] = time.perf_counter() - started
        if "vzcloud" in args.systems:
            started = time.perf_counter()
            creds = dataset.build_cloud(ds, work / "cloud")
            setup["build data set in the cloud"] = time.perf_counter() - started
            cloud = EmbeddedCloud(work / "cloud", work / "cloud.log")
            started = time.perf_counter()
            systems.append(VzCloud(work, cloud, creds))
            setup["start both vzcloud mounts (first mounts: a full fullview each)"] = \
                time.perf_counter() - started
        if "local" in args.systems:
            systems.append(Local(ds.main, ds.tree))
        if rclone is not None:
            started = time.perf_counter()
            systems.append(Rclone(rclone, work, ds.local))
            setup["start rclone serve + mount"] = time.perf_counter() - started
        for what, seconds in setup.items():
            say(f"bench: {what}: {seconds:.1f} s")
        results.systems = [s.name for s in systems]
        run_all(args, names, ds, systems, results, py_spy, save)
    finally:
        for system in reversed(systems):
            try:
                system.close()
            except Exception as exc:
                say(f"bench: stopping {system.name} failed: {exc}")
        if cloud is not None:
            cloud.close()
        if args.keep:
            say(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    save()
    print()
    print(f"machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gib']} GiB, "
          f"Linux {machine['kernel']}; load average at start {machine['load_average_start']}, "
          f"at end {machine['load_average_end']}, 1-min during runs "
          f"{machine.get('load_average_1min_during_runs', '-')}")
    print(f"data set: {'--quick' if args.quick else 'full'}, {args.repeat} run(s) per system; "
          f"rclone: {config['rclone'] or 'not run'}")
    print()
    print(report.table(results))
    print()
    print(report.targets_table(report.evaluate(results)))
    for note in results.notes:
        print(f"note: {note}")
    if args.json:
        say(f"bench: wrote {args.json}")
    return 0


def run_all(args: argparse.Namespace, names: list[str], ds: dataset.DataSet,
            systems: list[System], results: report.Results, py_spy: str | None,
            save: Callable[[], None]) -> None:
    """Run the workloads ``names`` (see the module docstring), into ``results``;
    ``save()`` after each workload."""
    loads = results.loads

    def drop(level: int) -> None:
        measure.drop_caches(level)

    for name in names:
        workload = WORKLOADS[name]
        for rep in range(args.repeat):
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]
            for system in order:
                loads.append(measure.load_average()[0])

                def pid(system: System = system, part: str = workload.part) -> int | None:
                    return system.pid(part)

                watch = measure.ProcessWatch(pid).start()
                server_watch = measure.ProcessWatch(system.server_pid).start()

                def timing_starts(watches: tuple[measure.ProcessWatch, ...] = (
                        watch, server_watch)) -> None:
                    for w in watches:
                        w.rebase_cpu()

                ctx = Ctx(ds, rep, drop, timing_starts)
                spies = []
                if args.py_spy and py_spy and system.name == "vzcloud":
                    args.py_spy.mkdir(parents=True, exist_ok=True)
                    spies = [measure.PySpy(py_spy, args.py_spy / f"{name}.mount.stacks",
                                           pid).start(),
                             measure.PySpy(py_spy, args.py_spy / f"{name}.cloud.stacks",
                                           system.server_pid).start()]
                try:
                    values = workload.run(system, ctx)
                except (WrongResult, OSError, subprocess.SubprocessError) as exc:
                    results.notes.append(f"{name} run {rep + 1} on {system.name} failed: {exc}")
                    say(f"bench: {results.notes[-1]}")
                    if not isinstance(exc, WrongResult):
                        traceback.print_exc()
                    values = {m.key: None for m in workload.metrics(ds.sizes)}
                finally:
                    peak = watch.stop().peak
                    server_watch.stop()
                    for spy in spies:
                        spy.stop()
                results.notes.extend(ctx.notes)
                for key, value in values.items():
                    results.add(key, system.name, value)
                results.add_rss(name, system.name, peak)
                results.add_cpu(name, system.name, watch.cpu, server_watch.cpu)
                shown = ", ".join(f"{k.split('.', 1)[1]} "
                                  f"{'-' if v is None else f'{v:.3f}s'}" for k, v in values.items())
                say(f"[{name} {rep + 1}/{args.repeat}] {system.name:<8} {shown}"
                    + (f"; peak RSS {peak / (1 << 20):.0f} MiB, CPU mount {watch.cpu:.1f} s "
                       f"server {server_watch.cpu:.1f} s" if peak else "")
                    + f"; load {loads[-1]:.2f}")
        save()
    if args.py_spy:
        for stacks in sorted(args.py_spy.glob("*.stacks")):
            summary = measure.summarize_stacks(stacks)
            stacks.with_suffix(".summary.txt").write_text(summary + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
