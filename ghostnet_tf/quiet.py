"""Keep native libraries' chatter off the terminal: TensorFlow's C++ start-up lines, the TFLite converter's
option dumps and LiteRT's "Created TensorFlow Lite XNNPACK delegate" are written straight to file descriptors
1 and 2, where no Python logging setting reaches them. Users then see only the project's own lines;
``GHOSTNET_DEBUG=1`` lets everything through."""
import contextlib
import io
import os
import sys
import threading

FDS = (1, 2)
STREAMS = {1: "stdout", 2: "stderr"}


_lock = threading.Lock()
_state = {"depth": 0, "saved": {}, "swapped": {}}  # one silencing for the whole process, however many threads


def _silence():
    for name in STREAMS.values():
        with contextlib.suppress(Exception):
            getattr(sys, name).flush()
    saved = _state["saved"] = {fd: os.dup(fd) for fd in FDS}
    swapped = _state["swapped"] = {}
    for fd, name in STREAMS.items():
        stream = getattr(sys, name)
        try:
            writes_to_fd = stream.fileno() == fd
        except (AttributeError, OSError, ValueError):  # pytest's capture, StringIO: not on the descriptor
            writes_to_fd = False
        if writes_to_fd:
            swapped[name] = stream
            setattr(sys, name, io.TextIOWrapper(io.FileIO(saved[fd], "w", closefd=False),
                                                encoding=stream.encoding, line_buffering=True))
    with open(os.devnull, "w") as devnull:
        for fd in FDS:
            os.dup2(devnull.fileno(), fd)


def _restore():
    for name, stream in _state["swapped"].items():
        with contextlib.suppress(Exception):
            getattr(sys, name).flush()
        setattr(sys, name, stream)
    for fd, copy in _state["saved"].items():
        os.dup2(copy, fd)
        os.close(copy)
    _state["saved"], _state["swapped"] = {}, {}


@contextlib.contextmanager
def native_output_silenced():
    """For the block, send what native code writes to stdout/stderr to /dev/null, while Python's own
    ``sys.stdout``/``sys.stderr`` (progress bars, tables, JSON) still reach the real terminal or pipe.

    The descriptors belong to the whole process: blocks that overlap in several threads (``bench compare``
    loads interpreters in parallel) share one silencing, which the last of them to leave undoes."""
    if os.environ.get("GHOSTNET_DEBUG"):
        yield
        return
    with _lock:
        if _state["depth"] == 0:
            _silence()
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _restore()


def import_tensorflow_quietly():
    """Import TensorFlow without its C++ start-up lines (absl's "I0000 ...", cuInit on a machine without a GPU),
    which ignore TF_CPP_MIN_LOG_LEVEL; a missing TensorFlow is left for the command itself to report."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_output_silenced(), contextlib.suppress(ImportError):
        import tensorflow  # noqa: F401
