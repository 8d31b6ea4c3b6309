"""A dependency-free progress bar on stderr, so stdout stays clean for tables and JSON."""
import sys
import time


def progress(iterable, total, label, enabled=True, stream=None):
    """Yield from ``iterable`` while drawing ``label [#####.....] i/total`` on stderr (a no-op if disabled)."""
    if not enabled or total <= 0:
        yield from iterable
        return
    stream = stream or sys.stderr
    start = time.monotonic()
    last_draw = 0.0

    def draw(done):
        filled = int(30 * done / total)
        stream.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} "
                     f"{time.monotonic() - start:.0f}s")
        stream.flush()

    done = 0
    draw(0)
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last_draw > 0.2 or done == total:
            draw(done)
            last_draw = now
    stream.write("\n")
    stream.flush()
