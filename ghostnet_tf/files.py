"""Atomic output: every file the project writes appears whole or not at all."""
import contextlib
import hashlib
import os
import re
import tempfile


def check_writable(path, arg):
    """Fail early (before minutes of work) if ``path`` cannot be created or appended to; ``arg`` names the option."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{arg}: {path!r} is a directory; give a file name")
    if not os.path.isdir(parent):
        raise ValueError(f"{arg}: cannot write {path!r}: directory {parent!r} does not exist")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{arg}: cannot write {path!r}: it is not writable")
    # Files are written beside their path and renamed, so the directory must take a new file; try it
    # (os.access says yes to root even on a read-only file system).
    try:
        fd, probe = tempfile.mkstemp(prefix=_temp_name(path)[1], dir=parent)
    except OSError as exc:
        raise ValueError(f"{arg}: cannot write {path!r}: {exc.strerror or exc}") from None
    os.close(fd)
    os.remove(probe)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_name(path):
    """(directory, prefix, suffix) of the temporary files ``atomic_path`` and ``check_writable`` make for ``path``."""
    path = os.fspath(path)
    name = os.path.basename(path)
    return os.path.dirname(os.path.abspath(path)), f".{name}.", name[name.index("."):] if "." in name else ""


def remove_stale_temps(path):
    """Remove the temporary files a killed process (``kill -9``, a power cut) left beside ``path``; returns
    their names. Only names of the exact form ``atomic_path`` makes (prefix, mkstemp's 8 characters, suffix)."""
    directory, prefix, suffix = _temp_name(path)
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}(" + re.escape(suffix) + ")?")
    stale = [name for name in os.listdir(directory) if pattern.fullmatch(name)]
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, name))
    return stale


def _sync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same suffix, for writers that look at it); rename it into
    place when the block succeeds, remove it when it fails (``remove_stale_temps``: when the process was killed)."""
    path = os.fspath(path)
    directory, prefix, suffix = _temp_name(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        _sync(tmp)  # on disk before the rename publishes it: after a power cut the file is whole, not empty
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:
        if tmp not in str(exc):
            raise
        # A writer's error names the temporary file; the user knows only the path they gave.
        raise (OSError if isinstance(exc, OSError) else ValueError)(str(exc).replace(tmp, path)) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path, data):
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
