"""Output files are checked before the slow work and written atomically: never a half-written file."""
import os
import tempfile


def check_writable(path, arg):
    """Fail early (before converting for a minute) if ``path`` cannot be created; ``arg`` names the option."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{arg}: {path!r} is a directory; give a file name")
    if not os.path.isdir(parent):
        raise ValueError(f"{arg}: cannot write {path!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{arg}: cannot write {path!r}: directory {parent!r} is not writable")


def write_atomic(path, data):
    """Write bytes to a temporary file next to ``path`` and rename it into place."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
