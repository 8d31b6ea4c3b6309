"""Subcommands of the model library itself: ``ghostnet info``."""
from ghostnet_tf.cli import parse_size, parse_width, print_json


def register(sub):
    p = sub.add_parser("info", help="build a GhostNet and print its parameters, MACs and per-stage table")
    p.add_argument("--width", type=parse_width, default=1.0, help="channel multiplier (default 1.0)")
    p.add_argument("--input-size", type=parse_size, default=(224, 224), help="S or HxW (default 224)")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=info)


def info(args):
    from ghostnet_tf import GhostNet, format_profile, profile

    model = GhostNet(width=args.width, input_shape=(*args.input_size, 3), classes=args.classes)
    result = profile(model)
    if args.json:
        print_json(result)
    else:
        print(format_profile(result))
