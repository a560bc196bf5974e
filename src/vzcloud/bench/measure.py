"""Measuring: page caches, peak RSS, profiles, machine facts, medians.

``drop_caches(level)`` writes ``/proc/sys/vm/drop_caches`` after a ``sync`` (1 = page
cache, 3 = page cache plus dentries and inodes); only root can, so ``can_drop_caches``
says whether cold figures are really cold.

``ProcessWatch`` follows a process that may be replaced meanwhile (a cold run restarts
the mount): it resets the kernel's high-water mark (``clear_refs`` 5) of the process
running when it starts and samples ``VmHWM``, ``VmRSS`` and CPU time every 20 ms, so a
short peak between two samples is still seen.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

SAMPLE_INTERVAL = 0.02
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_FRAME_LINE = re.compile(r":\d+\)$")  # "fn (file.py:123)" -> "fn (file.py)"


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches(level: int) -> bool:
    """Write back dirty pages, then drop clean caches (1: pages; 3: pages, dentries,
    inodes). False when not allowed (not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write(f"{level}\n")
    except OSError:
        return False
    return True


def _status_kib(pid: int, *keys: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


class ProcessWatch:
    """Peak resident memory (bytes) and CPU seconds of whichever process ``pid()``
    names, from ``start()`` to ``stop()``; ``pid()`` returning None means nothing to
    follow. CPU of a process started meanwhile counts from its start."""

    def __init__(self, pid: Callable[[], int | None]) -> None:
        self._pid = pid
        self.peak = 0
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-watch", daemon=True)

    @property
    def cpu(self) -> float:
        return sum(self._cpu_last[p] - self._cpu_first[p] for p in self._cpu_last)

    def _sample(self, first: bool = False) -> None:
        pid = self._pid()
        if pid is None:
            return
        if first:
            # The process running when measuring starts: count from now, not from its
            # start. A process started later (a cold restart) counts from its start.
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5\n")
            except OSError:
                pass
        kib = _status_kib(pid, "VmHWM", "VmRSS")
        self.peak = max(self.peak, *(v * 1024 for v in kib.values()), 0)
        cpu = _cpu_seconds(pid)
        if cpu is not None:
            self._cpu_first.setdefault(pid, cpu if first else 0.0)
            self._cpu_last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self._sample()

    def rebase_cpu(self) -> None:
        """Count CPU from now on only (a workload's timed part starts)."""
        pid = self._pid()
        cpu = None if pid is None else _cpu_seconds(pid)
        self._cpu_first, self._cpu_last = ({}, {}) if cpu is None or pid is None else \
            ({pid: cpu}, {pid: cpu})

    def start(self) -> ProcessWatch:
        self._sample(first=True)
        self._thread.start()
        return self

    def stop(self) -> ProcessWatch:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


class PySpy:
    """``py-spy record`` of the process ``pid()`` names, restarted when it changes; the
    collapsed stacks of every process followed are appended to ``out``. Idle time is left
    out (what is shown is CPU spent in Python and below)."""

    def __init__(self, exe: str, out: Path, pid: Callable[[], int | None]) -> None:
        self.exe = exe
        self.out = out
        self._pid = pid
        self._proc: subprocess.Popen[bytes] | None = None
        self._part = 0
        self._followed: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="py-spy", daemon=True)

    def _follow(self) -> None:
        pid = self._pid()
        if pid is None or pid == self._followed:
            return
        self._end()
        self._followed = pid
        self._part += 1
        part = self.out.with_suffix(f".{self._part}.txt")
        self._proc = subprocess.Popen(
            [self.exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
             "--nonblocking", "--output", str(part)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _end(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._follow()

    def start(self) -> PySpy:
        self._follow()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._end()
        with open(self.out, "a") as merged:
            for i in range(1, self._part + 1):
                part = self.out.with_suffix(f".{i}.txt")
                if part.exists():
                    merged.write(part.read_text())
                    part.unlink()


def summarize_stacks(path: Path, top: int = 15) -> str:
    """The functions taking the most samples in collapsed stacks (``py-spy --format
    raw``): inclusive (anywhere on the stack) and self (innermost frame)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_FRAME_LINE.sub(")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"-- {title}")
        for frame, n in counter.most_common(top):
            lines.append(f"{100 * n / total:5.1f}%  {frame}")
    return "\n".join(lines)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def wait_until(predicate: Callable[[], bool], timeout: float, step: float) -> bool:
    """Call ``predicate`` every ``step`` seconds until it holds (True) or ``timeout``
    seconds have passed (False). The tests' poll loop too."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    """Facts about the machine a run's figures belong to."""
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in load_average()],
    }
