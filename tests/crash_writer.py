"""The writer of the mount crash test (``tests/test_mount_crash.py``), run as a process.

Usage: ``python crash_writer.py DIR JOURNAL PREFIX SEED``. Forever (until an operation
fails, as every one does once the mount is killed): create ``DIR/PREFIX-N.bin`` with
random bytes, close it, append more, close it, then journal it; every third file is
then renamed to ``DIR/PREFIX-N.moved`` and the rename journaled. ``JOURNAL`` (outside
the mount) gets one JSON line per completed operation, appended and fsynced before the
next operation starts:

- ``{"op": "write", "path": P, "sha256": H}``: P was closed holding content H;
- ``{"op": "rename", "from": A, "to": B}``: rename(A, B) returned;
- ``{"op": "renaming", "from": A, "to": B}``: written before the rename starts; if no
  ``rename`` line follows, the rename's outcome is unknown (the mount died during it).

Paths in the journal are relative to DIR. Exit status 0 when stopped by a failed
operation (the expected end), after printing how many files were completed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from pathlib import Path


def main(directory: Path, journal_path: Path, prefix: str, seed: int) -> int:
    rng = random.Random(seed)
    done = 0
    with open(journal_path, "a", encoding="utf-8") as journal:

        def record(entry: dict[str, str]) -> None:
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

        try:
            for n in range(1_000_000):
                name = f"{prefix}-{n}.bin"
                first = rng.randbytes(rng.randrange(0, 96 << 10))
                second = rng.randbytes(rng.randrange(1, 32 << 10))
                with open(directory / name, "wb") as f:
                    f.write(first)
                with open(directory / name, "ab") as f:
                    f.write(second)
                record({"op": "write", "path": name,
                        "sha256": hashlib.sha256(first + second).hexdigest()})
                done += 1
                if n % 3 == 2:
                    moved = f"{prefix}-{n}.moved"
                    record({"op": "renaming", "from": name, "to": moved})
                    os.rename(directory / name, directory / moved)
                    record({"op": "rename", "from": name, "to": moved})
        except OSError as exc:
            print(f"stopped after {done} files: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
