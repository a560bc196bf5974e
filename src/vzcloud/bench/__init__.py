"""``scripts/bench``: the mount measured against a local directory and rclone, one run.

One command (``scripts/bench``, i.e. ``python -m vzcloud.bench``) builds a data set, starts
an embedded cloud and mounts it, serves the same data with ``rclone serve webdav`` and
mounts that with ``rclone mount --vfs-cache-mode full`` (when rclone is installed), and
runs every workload against the three: the vzcloud mount, the plain local directory the
data was built in, and the rclone mount. It prints medians over repeated runs with the
ratio to local disk and to rclone, the peak RSS of each mount process, and the issue-8
targets met or not; ``--json FILE`` writes the same as JSON. Benchmarks report; nothing
here asserts a timing.

Modules:
- ``dataset``: sizes (full and ``--quick``), the data set on disk and, in bulk through
  the store, in the embedded cloud (no 100,000 HTTP uploads);
- ``systems``: the three systems under test behind one interface (where the data is,
  which process serves it, how to make it cold, when written data is stored);
- ``measure``: dropping page caches, peak RSS sampling, py-spy, machine facts, medians;
- ``workloads``: the workloads, each timing its variants (cold, warm, re-read...);
- ``report``: the table, the targets, the JSON;
- ``__main__``: the command line (and ``serve``, the embedded cloud's child process).

Why a package under ``src/vzcloud`` rather than beside the script in ``scripts/``: it is
type-checked and linted with the rest (``scripts/test`` covers ``src``), child processes
start it with ``python -m vzcloud.bench``, and it reuses the server's store and the
profiles module without path tricks. It imports the server, SDK and profiles but never
``vzcloud.fs`` (the mount runs in its own process, as a user runs it), so it adds no
FUSE dependency to anything that imports the package.
"""
