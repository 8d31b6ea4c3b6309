"""The ``ghostnet`` command: one subcommand per job. Each package adds its own through ``register``."""
import argparse
import importlib
import json
import os
import sys

# Packages whose ``cli.register(subparsers)`` adds subcommands, in help order.
COMMAND_MODULES = ("ghostnet_tf.commands", "convert.cli", "android_bench.cli")


class UsageError(Exception):
    """A problem with the user's input: printed as one line, exit status 2, no traceback."""


def parse_size(text):
    """'224' -> (224, 224); '193x257' -> (193, 257) (height x width)."""
    parts = str(text).lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 224 or 193x257 (height x width), got {text!r}")
    return size


def parse_width(text):
    try:
        width = float(text)
    except ValueError:
        width = -1.0
    if not width > 0:
        raise argparse.ArgumentTypeError(f"width must be a number > 0 (e.g. 0.5, 1.0, 1.3), got {text!r}")
    return width


def print_json(obj):
    print(json.dumps(obj, indent=2, default=str))


def build_parser(prog="ghostnet", modules=COMMAND_MODULES):
    parser = argparse.ArgumentParser(prog=prog, description="GhostNet for Keras 3 and TensorFlow Lite.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None, prog="ghostnet", modules=COMMAND_MODULES):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of reports
    args = build_parser(prog, modules).parse_args(argv)
    try:
        return args.func(args) or 0
    except (UsageError, ValueError, OSError) as exc:
        if os.environ.get("GHOSTNET_DEBUG"):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
