"""The workloads. Each runs all its variants once against one system and returns seconds
per metric (None when a variant failed or timed out, with the reason in ``Ctx.notes``).

Cache states, the same for every system:
- cold: ``System.cold`` (a new mount process, content caches empty), then the kernel's
  page cache, dentries and inodes dropped;
- warm, for content: right after a read, with only the kernel's page cache dropped, so
  the filesystem's own cache serves it;
- warm, for listings: right after a listing, nothing dropped (the kernel's attribute and
  entry caches count: that is what a second ``ls`` gets);
- re-read: right after a read, nothing dropped (the kernel's page cache).
Every program's output is checked (entry counts, content markers, exit codes), so a
filesystem that answers fast but wrong does not get a figure.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from vzcloud.bench.dataset import (
    DataSet,
    Expected,
    MiB,
    Sizes,
    fill_block,
    pseudo_random_sha256,
    tree_dir_name,
    write_pseudo_random,
)
from vzcloud.bench.measure import timed
from vzcloud.bench.systems import System

STORED_TIMEOUT = 900.0  # seconds to wait for written data to reach the cloud
PROGRAM_ENV = {**os.environ, "LC_ALL": "C"}  # same collation and output everywhere


class WrongResult(Exception):
    """A workload's program gave a wrong answer (the message says what)."""


@dataclass(frozen=True)
class Metric:
    key: str  # "<workload>.<variant>"
    label: str
    nbytes: int | None = None  # bytes moved, for a MiB/s figure
    local: bool = True  # meaningful for the local directory


@dataclass
class Ctx:
    ds: DataSet
    rep: int
    drop: Callable[[int], None]
    # Called where the timed part starts (after a cold restart): CPU counts from there.
    timing_starts: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)

    def cold(self, system: System, part: str) -> None:
        """Make ``system`` cold for ``part`` (see the module docstring)."""
        system.cold(part)
        self.drop(3)
        self.timing_starts()

    @property
    def sizes(self) -> Sizes:
        return self.ds.sizes


@dataclass(frozen=True)
class Workload:
    name: str
    part: str  # the data set part (and mount process) it uses: main or tree
    metrics: Callable[[Sizes], list[Metric]]
    run: Callable[[System, Ctx], dict[str, float | None]]


def _gib(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / MiB:g} MiB"


def _program(args: list[str], cwd: Path | None = None, stdin: Path | None = None,
             ) -> tuple[float, bytes]:
    """Run a program; (seconds, its stdout). WrongResult if it fails."""
    started = time.perf_counter()
    with open(stdin or os.devnull, "rb") as inp:
        done = subprocess.run(args, cwd=cwd, stdin=inp, capture_output=True, env=PROGRAM_ENV)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise WrongResult(f"{' '.join(args[:3])} exited with {done.returncode}: "
                          f"{done.stderr.decode(errors='replace')[:300]}")
    return elapsed, done.stdout


# Reading ------------------------------------------------------------------------------------


def read_all(path: Path, size: int) -> None:
    """Read a ``big_blocks`` file sequentially in 1 MiB reads, checking each MiB's marker."""
    buf = bytearray(MiB)
    expect = bytearray(MiB)
    view = memoryview(buf)
    got = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            if got % MiB == 0 and n >= 16:
                fill_block(expect, got // MiB, 0)
                if buf[:16] != expect[:16]:
                    raise WrongResult(f"{path}: wrong content at offset {got}")
            got += n
    if got != size:
        raise WrongResult(f"{path}: read {got} bytes, expected {size}")


def _seqread_metrics(s: Sizes) -> list[Metric]:
    size = _gib(s.big_file)
    return [Metric("seqread.cold", f"seq read {size}, cold", s.big_file),
            Metric("seqread.warm", f"seq read {size}, warm (fs cache)", s.big_file),
            Metric("seqread.reread", f"seq read {size}, re-read (page cache)", s.big_file)]


def _seqread(system: System, ctx: Ctx) -> dict[str, float | None]:
    path, size = system.main / "big.bin", ctx.sizes.big_file
    ctx.cold(system, "main")
    cold = timed(lambda: read_all(path, size))
    ctx.drop(1)
    warm = timed(lambda: read_all(path, size))
    reread = timed(lambda: read_all(path, size))
    return {"seqread.cold": cold, "seqread.warm": warm, "seqread.reread": reread}


def random_reads(path: Path, offsets: list[int], size: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in offsets:
            if len(os.pread(fd, size, offset)) != size:
                raise WrongResult(f"{path}: short read at {offset}")
    finally:
        os.close(fd)


def _randread_metrics(s: Sizes) -> list[Metric]:
    what = f"{s.random_reads} random {s.random_read_size // 1024} KiB reads"
    return [Metric("randread.cold", f"{what}, cold"),
            Metric("randread.warm", f"{what}, warm (fs cache)")]


def _randread(system: System, ctx: Ctx) -> dict[str, float | None]:
    path, offsets = system.main / "big.bin", ctx.ds.random_offsets
    size = ctx.sizes.random_read_size
    ctx.cold(system, "main")
    cold = timed(lambda: random_reads(path, offsets, size))
    ctx.drop(1)
    warm = timed(lambda: random_reads(path, offsets, size))
    return {"randread.cold": cold, "randread.warm": warm}


# Writing ------------------------------------------------------------------------------------


@cache
def _write_sha256(size: int, seed: int) -> str:
    return pseudo_random_sha256(size, seed)


def _seqwrite_metrics(s: Sizes) -> list[Metric]:
    size = _gib(s.write_size)
    return [Metric("seqwrite.close", f"seq write {size}, until close()", s.write_size),
            Metric("seqwrite.stored", f"seq write {size}, until in the cloud*", s.write_size)]


def _seqwrite(system: System, ctx: Ctx) -> dict[str, float | None]:
    size, seed = ctx.sizes.write_size, 100 + ctx.rep
    rel = f"scratch/write-{system.name}-{ctx.rep}.bin"
    path = system.main / rel
    expected = Expected(size, _write_sha256(size, seed))
    os.sync()  # start with nothing dirty
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_pseudo_random(fd, size, seed)
    finally:
        os.close(fd)
    closed = time.perf_counter() - started
    stored: float | None = None
    if system.wait_stored({rel: expected}, STORED_TIMEOUT):
        stored = time.perf_counter() - started
    else:
        ctx.notes.append(f"seqwrite: {system.name} did not store {rel} in "
                         f"{STORED_TIMEOUT:.0f} s")
    os.unlink(path)
    return {"seqwrite.close": closed, "seqwrite.stored": stored}


def _tar_metrics(s: Sizes) -> list[Metric]:
    what = f"tar x of {s.tar_files} small files"
    return [Metric("tar.returned", f"{what}, until tar returns"),
            Metric("tar.stored", f"{what}, until all in the cloud*")]


def _tar(system: System, ctx: Ctx) -> dict[str, float | None]:
    rel = f"scratch/tar-{system.name}-{ctx.rep}"
    dest = system.main / rel
    dest.mkdir()
    os.sync()
    started = time.perf_counter()
    returned, _ = _program(["tar", "--no-same-owner", "-xf", str(ctx.ds.tar_archive),
                            "-C", str(dest)])
    files = {f"{rel}/{name}": want for name, want in ctx.ds.tar_members.items()}
    stored: float | None = None
    if system.wait_stored(files, STORED_TIMEOUT):
        stored = time.perf_counter() - started
    else:
        ctx.notes.append(f"tar: {system.name} did not store {rel} in {STORED_TIMEOUT:.0f} s")
    return {"tar.returned": returned, "tar.stored": stored}


# Listing ------------------------------------------------------------------------------------


def _lines(output: bytes) -> int:
    return output.count(b"\n")


def _ls_metrics(s: Sizes) -> list[Metric]:
    what = f"ls -l of {s.ls_entries:,} entries"
    return [Metric("ls.cold", f"{what}, cold"), Metric("ls.warm", f"{what}, warm")]


def _listing(system: System, ctx: Ctx, workload: str, part: str, args: list[str],
             lines: int) -> dict[str, float | None]:
    """Run the listing program ``args`` over data set part ``part``, cold then warm (see
    the module docstring); each run must print exactly ``lines`` lines."""
    ctx.cold(system, part)
    out: dict[str, float | None] = {}
    for variant in ("cold", "warm"):
        elapsed, listing = _program(args)
        if _lines(listing) != lines:
            raise WrongResult(f"{' '.join(args)} printed {_lines(listing)} lines")
        out[f"{workload}.{variant}"] = elapsed
    return out


def _ls(system: System, ctx: Ctx) -> dict[str, float | None]:
    return _listing(system, ctx, "ls", "main", ["ls", "-l", str(system.main / "ls")],
                    ctx.sizes.ls_entries + 1)  # + the "total" line


def _find_metrics(s: Sizes) -> list[Metric]:
    what = f"find over {s.tree_entries:,} entries"
    return [Metric("find.cold", f"{what}, cold"), Metric("find.warm", f"{what}, warm")]


def _find(system: System, ctx: Ctx) -> dict[str, float | None]:
    return _listing(system, ctx, "find", "tree", ["find", str(system.tree)],
                    ctx.sizes.tree_entries + 1)  # + the top folder


def _cat_metrics(s: Sizes) -> list[Metric]:
    what = f"cat of {s.tiny_files:,} tiny files"
    return [Metric("cat.cold", f"{what}, cold"), Metric("cat.warm", f"{what}, warm (fs cache)")]


def _cat(system: System, ctx: Ctx) -> dict[str, float | None]:
    folder = system.main / "tiny"
    ctx.cold(system, "main")
    cold, _ = _program(["xargs", "-0", "cat"], cwd=folder, stdin=ctx.ds.tiny_list)
    ctx.drop(1)
    warm, _ = _program(["xargs", "-0", "cat"], cwd=folder, stdin=ctx.ds.tiny_list)
    return {"cat.cold": cold, "cat.warm": warm}


# Mounting -----------------------------------------------------------------------------------


def _mount_metrics(s: Sizes) -> list[Metric]:
    what = f"{s.tree_entries:,}-entry account"
    return [Metric("mount.first", f"first mount of a {what} to first listing", local=False),
            Metric("mount.remount", f"remount of a {what} to first listing", local=False)]


def _mount(system: System, ctx: Ctx) -> dict[str, float | None]:
    if not system.can_remount:
        return {"mount.first": None, "mount.remount": None}
    folder = system.tree / tree_dir_name(0)
    out: dict[str, float | None] = {}
    for variant, everything in (("first", True), ("remount", False)):
        system.stop("tree")
        if everything:
            system.clear_cache("tree", everything=True)
        started = time.perf_counter()
        system.start("tree")
        listed = len(os.listdir(folder))
        out[f"mount.{variant}"] = time.perf_counter() - started
        if listed != ctx.sizes.tree_files_per_dir:
            raise WrongResult(f"{folder} lists {listed} entries after mounting")
    return out


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("seqread", "main", _seqread_metrics, _seqread),
    Workload("randread", "main", _randread_metrics, _randread),
    Workload("seqwrite", "main", _seqwrite_metrics, _seqwrite),
    Workload("tar", "main", _tar_metrics, _tar),
    Workload("ls", "main", _ls_metrics, _ls),
    Workload("find", "tree", _find_metrics, _find),
    Workload("cat", "main", _cat_metrics, _cat),
    Workload("mount", "tree", _mount_metrics, _mount),
)}
