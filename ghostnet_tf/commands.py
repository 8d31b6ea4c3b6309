"""Subcommands of the model library itself: ``ghostnet info`` and ``ghostnet port``."""
from ghostnet_tf.cliutil import UsageError, check_distinct_paths, parse_size, parse_width, positive_int, print_json


def register(sub):
    p = sub.add_parser("info", help="build a GhostNet and print its parameters, MACs and per-stage table")
    add_family_argument(p)
    p.add_argument("--reparameterized", action="store_true",
                   help="v3: the folded inference form (default: the multi-branch training form, timm's count)")
    p.add_argument("--width", type=parse_width, default=1.0, help="channel multiplier (default 1.0)")
    p.add_argument("--input-size", type=parse_size, default=(224, 224), help="S or HxW (default 224)")
    p.add_argument("--classes", type=positive_int, default=1000)
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=info, tensorflow=True)

    p = sub.add_parser("port", help="convert a timm/official checkpoint once into Keras weights or a .keras model")
    p.add_argument("src", help="checkpoint: .safetensors (timm hub) or .pth/.pt (official release; needs torch)")
    p.add_argument("-o", "--output", required=True, help="OUT.weights.h5 (Keras weights) or OUT.keras (whole model)")
    p.add_argument("--width", type=parse_width, default=None,
                   help="channel multiplier (default: read from the checkpoint's channel counts)")
    p.set_defaults(func=port, tensorflow=True)


def add_family_argument(p):
    p.add_argument("--family", choices=("v1", "v2", "v3"), default="v1",
                   help="GhostNet (v1, default), GhostNetV2 (v2) or GhostNetV3 (v3)")


def info(args):
    from ghostnet_tf import build_model, format_profile, profile

    model = build_model(args.family, args.width, reparameterized=args.reparameterized,
                        input_shape=(*args.input_size, 3), classes=args.classes)
    result = profile(model)
    if args.json:
        print_json(result)
    else:
        print(format_profile(result))


def port(args):
    from ghostnet_tf.port import port_checkpoint

    check_distinct_paths(src=args.src, **{"-o/--output": args.output})
    try:
        width, classes, family = port_checkpoint(args.src, args.output, width=args.width)
    except ImportError as exc:  # reading a .pth without torch installed
        raise UsageError(str(exc)) from None
    print(f"{args.output}: {family} width {width}, {classes} classes, from {args.src}")
