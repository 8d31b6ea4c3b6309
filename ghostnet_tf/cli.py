"""The ``ghostnet`` command. Each package adds its subcommands through the ``ghostnet.commands`` entry point
group (pyproject.toml), so this module names none of them and imports flow one way: packages -> here."""
import argparse
import contextlib
import importlib
import os
import sys
from importlib.metadata import entry_points

from ghostnet_tf.cliutil import UsageError

ENTRY_POINT_GROUP = "ghostnet.commands"
# Help order of the installed packages' command groups; others follow by name.
ORDER = ("model", "convert", "bench")


def _registrars(modules):
    """``register(subparsers)`` functions: of the given modules, else of every installed entry point."""
    if modules is not None:
        return [importlib.import_module(name).register for name in modules]
    found = sorted(entry_points(group=ENTRY_POINT_GROUP),
                   key=lambda ep: (ORDER.index(ep.name) if ep.name in ORDER else len(ORDER), ep.name))
    return [ep.load() for ep in found]


def build_parser(prog="ghostnet", modules=None):
    parser = argparse.ArgumentParser(prog=prog, description="GhostNet for Keras 3 and TensorFlow Lite.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars(modules):
        register(sub)
    return parser


def import_tensorflow_quietly():
    """Import TensorFlow with file descriptor 2 closed: its C++ start-up lines (absl's "I0000 ...") ignore
    TF_CPP_MIN_LOG_LEVEL, and an error message must stay one line."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            with contextlib.suppress(ImportError):  # the command itself reports a missing TensorFlow
                importlib.import_module("tensorflow")
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv=None, prog="ghostnet", modules=None):
    """Run one subcommand; bad input is one line on stderr and exit status 2 (GHOSTNET_DEBUG=1: traceback)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser(prog, modules).parse_args(argv)
    try:
        if getattr(args, "tensorflow", False):
            import_tensorflow_quietly()
        return args.func(args) or 0
    except (UsageError, ValueError, OSError, OverflowError) as exc:
        if os.environ.get("GHOSTNET_DEBUG"):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
