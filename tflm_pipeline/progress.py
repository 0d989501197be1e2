"""A small progress bar on stderr for steps longer than a couple of seconds.

Draws only on a terminal; elsewhere (CI logs, pipes) it prints one summary line when
done, so logs stay readable, and with ``heartbeat`` a line every so many seconds for
steps that take minutes.  Used as a context manager it also redraws the elapsed
time twice a second, for steps whose parts take long (one TFLite conversion).
"""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, total: int, label: str, *, stream=None, enabled: bool = True,
                 summary_after: float = 0.0, heartbeat: float = 0.0):
        """``summary_after``: print the closing summary line only for steps that took at
        least this many seconds; ``heartbeat``: off a terminal, print the count and the
        elapsed time at most this often (0: never)."""
        self.summary_after = summary_after
        self.heartbeat = heartbeat
        self.total = max(int(total), 1)
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.live:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if exc[0] is None:
            self.close()
        elif self.live:
            self.stream.write("\r\033[K")

    def update(self, done: int) -> None:
        self.done = min(int(done), self.total)
        now = time.monotonic()
        if self.live and (now - self._last_draw > 0.1 or self.done == self.total):
            self._draw(now)
        elif (not self.live and self.enabled and self.heartbeat
              and now - max(self._last_draw, self.start) >= self.heartbeat
              and self.done < self.total):
            self._last_draw = now
            self.stream.write(f"{self.label}: {self.done}/{self.total} after "
                              f"{now - self.start:.0f}s\n")
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        with self._lock:
            self._last_draw = now
            frac = self.done / self.total
            elapsed = now - self.start
            eta = f" eta {elapsed / frac - elapsed:4.0f}s" if 0 < frac < 1 else ""
            self.stream.write(f"\r{self.label} [{'#' * int(frac * 30):<30}] "
                              f"{self.done}/{self.total} {elapsed:5.1f}s{eta} ")
            self.stream.flush()

    def close(self) -> float:
        elapsed = time.monotonic() - self.start
        if self.enabled:
            with self._lock:
                if self.live:
                    self.stream.write("\r\033[K")
                if elapsed >= self.summary_after:
                    self.stream.write(f"{self.label}: {self.done}/{self.total} in "
                                      f"{elapsed:.1f}s\n")
                self.stream.flush()
        return elapsed
