"""The benchmark's results: medians, speed ratios, the issue-8 targets, table and JSON.

A speed ratio is ``other system's median time / vzcloud's median time``: above 1 means
vzcloud is faster (2.0x: twice as fast, or done in half the time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vzcloud.bench.measure import median
from vzcloud.bench.workloads import Metric

VZ = "vzcloud"
SYSTEM_ORDER = ("vzcloud", "local", "rclone")
RSS_LIMIT = 200 * 1000 * 1000  # "200 MB"


@dataclass
class Results:
    metrics: list[Metric]
    systems: list[str]
    runs: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    rss: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # workload -> system
    # workload -> system -> [(mount CPU s, server CPU s)], one per run
    cpu: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)  # 1-min load average before each run

    def add(self, key: str, system: str, value: float | None) -> None:
        self.runs.setdefault(key, {}).setdefault(system, []).append(value)

    def add_rss(self, workload: str, system: str, peak: int) -> None:
        if peak:
            self.rss.setdefault(workload, {}).setdefault(system, []).append(peak)

    def add_cpu(self, workload: str, system: str, mount: float, server: float) -> None:
        if mount or server:
            self.cpu.setdefault(workload, {}).setdefault(system, []).append((mount, server))

    def median_cpu(self, workload: str, system: str) -> tuple[float, float] | None:
        runs = self.cpu.get(workload, {}).get(system)
        if not runs:
            return None
        return (median([m for m, _ in runs]) or 0.0, median([s for _, s in runs]) or 0.0)

    def median(self, key: str, system: str) -> float | None:
        return median(list(self.runs.get(key, {}).get(system, [])))

    def speed(self, key: str, other: str) -> float | None:
        """How many times faster vzcloud was than ``other`` (None if either is missing)."""
        mine, theirs = self.median(key, VZ), self.median(key, other)
        if mine is None or theirs is None or mine <= 0:
            return None
        return theirs / mine

    def peak_rss(self, system: str) -> int | None:
        peaks = [p for by_system in self.rss.values() for p in by_system.get(system, [])]
        return max(peaks) if peaks else None


@dataclass(frozen=True)
class Target:
    label: str
    metric: str
    goal: float
    kind: str  # "speed vs rclone", "speed vs local", "seconds below", "bytes below"


TARGETS = (
    Target("cold seq read >= 2x rclone", "seqread.cold", 2.0, "speed vs rclone"),
    Target("warm seq read >= 1.5x rclone", "seqread.warm", 1.5, "speed vs rclone"),
    Target("warm seq read >= 0.5x local", "seqread.warm", 0.5, "speed vs local"),
    Target("ls -l warm >= 1x rclone", "ls.warm", 1.0, "speed vs rclone"),
    Target("ls -l cold >= 2x rclone", "ls.cold", 2.0, "speed vs rclone"),
    Target("cat tiny files cold >= 5x rclone", "cat.cold", 5.0, "speed vs rclone"),
    Target("tar x all uploaded >= 4x sooner than rclone", "tar.stored", 4.0, "speed vs rclone"),
    Target("remount to first listing < 1 s", "mount.remount", 1.0, "seconds below"),
    Target("mount RSS < 200 MB through all", "", RSS_LIMIT, "bytes below"),
)


def evaluate(results: Results) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    out = []
    for t in TARGETS:
        value: float | None
        if t.kind.startswith("speed vs "):
            value = results.speed(t.metric, t.kind.removeprefix("speed vs "))
            met = None if value is None else value >= t.goal
        elif t.kind == "seconds below":
            value = results.median(t.metric, VZ)
            met = None if value is None else value < t.goal
        else:
            peak = results.peak_rss(VZ)
            value = None if peak is None else float(peak)
            met = None if value is None else value < t.goal
        out.append({"target": t.label, "kind": t.kind, "goal": t.goal, "value": value,
                    "met": met})
    return out


def _seconds(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.1f} ms" if v < 0.1 else f"{v:.2f} s"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _mib(v: int | None) -> str:
    return "-" if v is None else f"{v / (1 << 20):.0f}"


def table(results: Results) -> str:
    systems = [s for s in SYSTEM_ORDER if s in results.systems]
    others = [s for s in ("local", "rclone") if s in systems and VZ in systems]
    width = max([len(m.label) for m in results.metrics] + [30]) + 2
    head = f"{'median of runs':<{width}}" + "".join(f"{s:>11}" for s in systems) + \
        "".join(f"{'vs ' + s:>11}" for s in others)
    lines = [head, "-" * len(head)]
    for m in results.metrics:
        if m.key not in results.runs:
            continue
        cells = [_seconds(results.median(m.key, s)) if (m.local or s != "local") else "n/a"
                 for s in systems]
        ratios = [_ratio(results.speed(m.key, o)) if (m.local or o != "local") else ""
                  for o in others]
        lines.append(f"{m.label:<{width}}" + "".join(f"{c:>11}" for c in cells)
                     + "".join(f"{r:>11}" for r in ratios))
        if m.nbytes:
            rates = []
            for s in systems:
                t = results.median(m.key, s)
                rates.append("-" if not t else f"{m.nbytes / (1 << 20) / t:.0f} MiB/s")
            lines.append(f"{'':<{width}}" + "".join(f"{r:>11}" for r in rates))
    lines.append("(vs X: X's median time / vzcloud's; above 1 = vzcloud faster. "
                 "* for local: until on disk, i.e. sync)")
    rss_systems = [s for s in systems if s != "local"]
    if results.rss and rss_systems:
        lines.append("")
        lines.append(f"{'peak RSS of the mount process, MiB':<{width}}"
                     + "".join(f"{s:>11}" for s in rss_systems))
        for workload, by_system in results.rss.items():
            lines.append(f"{workload:<{width}}" + "".join(
                f"{_mib(max(by_system[s]) if by_system.get(s) else None):>11}"
                for s in rss_systems))
        lines.append(f"{'all workloads':<{width}}"
                     + "".join(f"{_mib(results.peak_rss(s)):>11}" for s in rss_systems))
    if results.cpu and rss_systems:
        lines.append("")
        lines.append(f"{'CPU seconds per run (mount + server)':<{width}}"
                     + "".join(f"{s:>15}" for s in rss_systems))
        for workload in results.cpu:
            cells = []
            for s in rss_systems:
                got = results.median_cpu(workload, s)
                cells.append("-" if got is None else f"{got[0]:.1f} + {got[1]:.1f}")
            lines.append(f"{workload:<{width}}" + "".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def targets_table(evaluated: list[dict[str, Any]]) -> str:
    lines = [f"{'issue 8 target':<46}{'measured':>12}  result"]
    for t in evaluated:
        v = t["value"]
        if v is None:
            shown = "-"
        elif t["kind"] == "bytes below":
            shown = f"{v / 1e6:.0f} MB"
        elif t["kind"] == "seconds below":
            shown = _seconds(v)
        else:
            shown = _ratio(v)
        result = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"{t['target']:<46}{shown:>12}  {result}")
    return "\n".join(lines)


def to_json(results: Results, machine: dict[str, Any], config: dict[str, Any],
            ) -> dict[str, Any]:
    metrics = []
    for m in results.metrics:
        if m.key not in results.runs:
            continue
        metrics.append({
            "key": m.key, "label": m.label, "unit": "s", "bytes": m.nbytes,
            "systems": {s: {"median": results.median(m.key, s), "runs": runs}
                        for s, runs in results.runs[m.key].items()},
            "speed_vs_local": results.speed(m.key, "local") if m.local else None,
            "speed_vs_rclone": results.speed(m.key, "rclone"),
        })
    return {
        "machine": machine,
        "config": config,
        "metrics": metrics,
        "peak_rss_bytes": {w: {s: max(v) for s, v in by.items()}
                           for w, by in results.rss.items()},
        "cpu_seconds_mount_server": {w: {s: results.median_cpu(w, s) for s in by}
                                     for w, by in results.cpu.items()},
        "targets": evaluate(results),
        "notes": results.notes,
    }
