"""The small helpers every package's subcommands share: the usage error, argument parsers, JSON output.

Kept apart from ``ghostnet_tf.cli`` (which discovers the subcommands) so that ``convert`` and
``android_bench`` import these without the command module importing them back."""
import argparse
import json
import os
import stat

from ghostnet_tf.spec import MAX_CLASSES, MAX_INPUT_SIDE, MAX_WIDTH, check_crop_pct, check_width


class UsageError(Exception):
    """A problem with the user's input: printed as one line, exit status 2, no traceback."""


class MissingDependency(ImportError):
    """An optional package the input needs is not installed (e.g. torch for a .pth): one line, exit status 2."""


def first_line(exc):
    """The first line of an exception's text (its type name if it has none): errors stay one line."""
    return (str(getattr(exc, "message", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


def parse_size(text):
    """'224' -> (224, 224); '193x257' -> (193, 257) (height x width)."""
    parts = str(text).lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1 or max(size) > MAX_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"expected a size like 224 or 193x257 (height x width, each from 1 to "
                                         f"{MAX_INPUT_SIDE}), got {text!r}")
    return size


def parse_width(text):
    try:
        return check_width(float(text), "--width")
    except ValueError:
        raise argparse.ArgumentTypeError(f"width must be a number > 0 and <= {MAX_WIDTH:g} (e.g. 0.5, 1.0, 1.3), "
                                         f"got {text!r}") from None


def integer_at_least(minimum, maximum=None):
    """An argparse type: an integer >= ``minimum`` (and <= ``maximum`` if given)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum:,}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {text!r}")
        return value
    return parse


positive_int = integer_at_least(1)
class_count = integer_at_least(1, MAX_CLASSES)


def parse_crop_pct(text):
    """A crop fraction, checked by the one range check ``Transform`` uses too, so that no command accepts what
    the evaluation then refuses."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction of the short side, e.g. 0.875, got {text!r}") from None
    try:
        return check_crop_pct(value)
    except ValueError as exc:  # "crop_pct: crop_pct must be in ..., got ..."
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def check_input_file(path, option):
    """Refuse, in one line naming ``option`` and the file, a path that is missing, not a regular file (a folder,
    /dev/zero, a FIFO: reading it would hang or exhaust memory) or unreadable; returns the path."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(f"{option}: {path!r} {'does not exist' if not os.path.lexists(path) else 'cannot be read'}"
                         f"{'' if not os.path.lexists(path) else ': ' + (exc.strerror or str(exc))}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise UsageError(f"{option}: {path!r} is {kind}; give a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{option}: {path!r} is not readable")
    return path


def parse_positive_list(text):
    """'1,2,4' -> [1, 2, 4] (thread counts)."""
    return [positive_int(part) for part in str(text).split(",")]


def check_weights_with_width(weights, width):
    """``--weights`` only makes sense for a GhostNet built from ``--width``."""
    if weights is not None and width is None:
        raise UsageError("--weights goes with --width; a --keras-model file carries its own weights")


def check_distinct_paths(**paths):
    """Refuse an output that is the same file as an input or as another output ({option: path or None})."""
    seen = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = os.path.realpath(os.fspath(path))
        if key in seen:
            raise UsageError(f"{option} {os.fspath(path)!r} is the same file as {seen[key]}; give another path")
        seen[key] = option


def print_json(obj):
    print(json.dumps(obj, indent=2, default=str))
