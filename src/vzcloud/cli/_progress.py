"""Transfer progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise.

``TransferProgress(label, total)`` is a ``callback(done, total)`` for the SDK's
``progress=`` parameter; call ``finish()`` when the transfer succeeded (a failed one just
stops, and ``close()`` ends a half-drawn bar with a newline so the error starts on its own
line). On a terminal the bar is redrawn at most every ``REDRAW_SECONDS``::

    /VZMOBILE/big.bin [##########..........]  50%  5.0 MiB/10.0 MiB  2.1 MiB/s

Elsewhere (a pipe, a log, systemd's journal) a line is written each time another
``PLAIN_STEP_PERCENT`` is reached, and one at the end::

    /VZMOBILE/big.bin: 25% (2.5 MiB of 10.0 MiB)
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from vzcloud.cli._common import count, human_size

REDRAW_SECONDS = 0.1
PLAIN_STEP_PERCENT = 25
_MIN_BAR = 10
_MAX_BAR = 30
_TAIL_WIDTH = len(" 100%  1023.9 MiB/1023.9 MiB  1023.9 MiB/s")


class TransferProgress:
    """Progress of one transfer of ``total`` bytes (see the module docstring).

    ``tty`` overrides the terminal detection of ``stream`` (tests); ``clock`` is
    ``time.monotonic`` unless given. ``amount`` writes a quantity: binary sizes unless
    the progress counts something else (``count_of("file")`` counts files)."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None,
                 tty: bool | None = None, clock: Callable[[], float] = time.monotonic,
                 amount: Callable[[int], str] = human_size) -> None:
        self.label = label
        self.total = total
        self.amount = amount
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.done = 0
        self._drawn_at: float | None = None
        self._plain_reported = -1  # the last plain step written, in percent
        self._open_line = False  # a bar is on screen without its newline

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.tty:
            now = self.clock()
            if self._drawn_at is None or now - self._drawn_at >= REDRAW_SECONDS:
                self._draw_bar(now)
        else:
            step = self.percent() // PLAIN_STEP_PERCENT * PLAIN_STEP_PERCENT
            if step > self._plain_reported and 0 < step < 100:
                self._plain_reported = step
                self._write_plain(step)

    def percent(self) -> int:
        return 100 if self.total <= 0 else min(100, self.done * 100 // self.total)

    def finish(self) -> None:
        """The transfer is complete: show 100% and end the line."""
        self.done = max(self.done, self.total)
        if self.tty:
            self._draw_bar(self.clock())
            self.close()
        elif self._plain_reported < 100:
            self._plain_reported = 100
            self._write_plain(100)

    def close(self) -> None:
        """End a bar still on screen with a newline (after a failure, too)."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def _write_plain(self, percent: int) -> None:
        self.stream.write(f"{self.label}: {percent}% ({self.amount(self.done)} of "
                          f"{self.amount(self.total)})\n")
        self.stream.flush()

    def _draw_bar(self, now: float) -> None:
        self._drawn_at = now
        elapsed = now - self.started
        rate = f"  {self.amount(int(self.done / elapsed))}/s" if elapsed > 0.2 else ""
        tail = (f" {self.percent():3d}%  {self.amount(self.done)}/{self.amount(self.total)}"
                f"{rate}")
        # The bar's width depends only on the terminal and the label, so it stays put
        # while the numbers after it change length.
        width = shutil.get_terminal_size((80, 24)).columns - 1
        room = width - _TAIL_WIDTH - 3  # for label, bar and " [" "]"
        bar_width = max(_MIN_BAR, min(_MAX_BAR, room - len(self.label)))
        label_width = max(0, room - bar_width)
        label = self.label if len(self.label) <= label_width else (
            "..." + self.label[-(label_width - 3):] if label_width > 3 else "")
        filled = self.percent() * bar_width // 100
        bar = "#" * filled + "." * (bar_width - filled)
        # \r back to the line's start; \x1b[K erases what a longer earlier frame left.
        self.stream.write(f"\r{label} [{bar}]{tail}\x1b[K")
        self.stream.flush()
        self._open_line = True


def count_of(noun: str) -> Callable[[int], str]:
    """An ``amount`` for TransferProgress that counts ``noun``s: ``1 file``, ``20 files``."""
    return lambda n: count(n, noun)
