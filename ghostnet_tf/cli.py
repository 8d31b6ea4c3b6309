"""The ``ghostnet`` command. Each package adds its subcommands through the ``ghostnet.commands`` entry point
group (pyproject.toml), so this module names none of them and imports flow one way: packages -> here."""
import argparse
import importlib
import os
import shlex
import sys
from importlib.metadata import entry_points

from ghostnet_tf.cliutil import MissingDependency, UsageError
from ghostnet_tf.quiet import import_tensorflow_quietly

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


def package_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ghostnet-tf")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser(prog="ghostnet", modules=None):
    parser = argparse.ArgumentParser(
        prog=prog, description="GhostNet for Keras 3, exported to int8 TensorFlow Lite and measured on ARM CPUs: "
                               "info/port/train a model, convert/eval it, bench it (phone over adb, this CPU, "
                               "emulated ARM cores) and compare it with MobileNets.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars(modules):
        register(sub)
    return parser


def main(argv=None, prog="ghostnet", modules=None):
    """Run one subcommand; bad input is one line on stderr and exit status 2 (GHOSTNET_DEBUG=1: traceback)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser(prog, modules).parse_args(argv)
    args.command_line = shlex.join([prog, *(sys.argv[1:] if argv is None else argv)])  # for reports
    try:
        if getattr(args, "tensorflow", False):
            import_tensorflow_quietly()
        return args.func(args) or 0
    except (UsageError, MissingDependency, ValueError, OSError, OverflowError) as exc:
        if os.environ.get("GHOSTNET_DEBUG"):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
