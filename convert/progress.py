"""A dependency-free progress bar on stderr, so stdout stays clean for tables and JSON."""
import sys
import time


class Progress:
    """``label [#####.....] done/total 12s`` redrawn in place at most 5 times a second; a no-op if disabled."""

    def __init__(self, total, label, enabled=True, stream=None):
        self.total, self.label = total, label
        self.enabled = enabled and total > 0
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = self.last_draw = time.monotonic()
        self._draw()

    def _draw(self):
        if self.enabled:
            filled = int(30 * self.done / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                              f"{time.monotonic() - self.start:.0f}s")
            self.stream.flush()

    def step(self):
        self.done += 1
        now = time.monotonic()
        if now - self.last_draw > 0.2 or self.done == self.total:
            self._draw()
            self.last_draw = now

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def progress(iterable, total, label, enabled=True):
    """Yield from ``iterable`` with a ``Progress`` bar."""
    bar = Progress(total, label, enabled)
    try:
        for item in iterable:
            yield item
            bar.step()
    finally:
        bar.close()
