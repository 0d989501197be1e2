"""A small progress bar on stderr for steps longer than a couple of seconds.

Draws only on a terminal; elsewhere (CI logs, pipes) it prints one summary line when
done, so logs stay readable.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, *, stream=None, enabled: bool = True):
        self.total = max(int(total), 1)
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self.start = time.monotonic()
        self._last_draw = 0.0

    def update(self, done: int) -> None:
        self.done = min(int(done), self.total)
        now = time.monotonic()
        if self.live and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            frac = self.done / self.total
            bar = "#" * int(frac * 30)
            elapsed = now - self.start
            eta = elapsed / frac - elapsed if frac > 0 else 0.0
            self.stream.write(f"\r{self.label} [{bar:<30}] {self.done}/{self.total} "
                              f"{elapsed:5.1f}s eta {eta:4.0f}s ")
            self.stream.flush()

    def close(self) -> float:
        elapsed = time.monotonic() - self.start
        if self.enabled:
            if self.live:
                self.stream.write("\r\033[K")
            self.stream.write(f"{self.label}: {self.done}/{self.total} in {elapsed:.1f}s\n")
            self.stream.flush()
        return elapsed
