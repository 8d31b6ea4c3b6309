"""Subcommands of the model library itself: ``ghostnet info``, ``ghostnet port`` and ``ghostnet train``."""
import argparse
import math

from ghostnet_tf.cliutil import (UsageError, check_distinct_paths, check_input_file, class_count, integer_at_least,
                                 parse_crop_pct, parse_size, parse_width, print_json)
from ghostnet_tf.training.config import MAX_BATCH_SIZE, MAX_DEVICES, MAX_EPOCHS, MAX_SEED


def _number(minimum, maximum=None, open_low=False):
    """An argparse type: a finite float in [minimum, maximum) (or (minimum, ...) with ``open_low``)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = math.isfinite(value) and (value > minimum if open_low else value >= minimum) and (
            maximum is None or value < maximum)
        if not ok:
            bound = f"{'>' if open_low else '>='} {minimum:g}" + (f" and < {maximum:g}" if maximum is not None else "")
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value
    return parse


def register(sub):
    p = sub.add_parser("info", help="build a GhostNet and print its parameters, MACs and per-stage table")
    add_model_argument(p)
    add_family_argument(p, default=None)
    p.add_argument("--reparameterized", action="store_true",
                   help="v3, rep: the folded inference form (default: the training form, timm's count)")
    p.add_argument("--width", type=parse_width, default=None, help="channel multiplier (default 1.0)")
    p.add_argument("--input-size", type=parse_size, default=(224, 224), help="S or HxW (default 224)")
    p.add_argument("--classes", type=class_count, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=info, tensorflow=True)

    p = sub.add_parser("port", help="convert a timm/official checkpoint once into Keras weights or a .keras model")
    p.add_argument("src", help="checkpoint: .safetensors (timm hub) or .pth/.pt (official release; needs torch)")
    p.add_argument("-o", "--output", required=True, help="OUT.weights.h5 (Keras weights) or OUT.keras (whole model)")
    p.add_argument("--width", type=parse_width, default=None,
                   help="channel multiplier (default: read from the checkpoint's channel counts)")
    p.set_defaults(func=port, tensorflow=True)

    p = sub.add_parser("train", help="train or fine-tune a GhostNet on an image folder (one sub-folder per class) "
                                     "or a .npz of images and labels")
    p.add_argument("data", nargs="?", help="DIR/<class>/*.jpg|png, or .npz with 'images' (N,H,W,3) and 'labels' "
                                           "(not needed with --resume)")
    p.add_argument("-o", "--output", required=True,
                   help="OUT.keras: the best epoch's model (by validation top-1; the last without validation); "
                        "beside it OUT.last.keras, OUT.log.csv, OUT.report.json")
    add_model_argument(p)
    add_family_argument(p, default=None)
    p.add_argument("--width", type=parse_width, default=None, help="channel multiplier (default 1.0)")
    p.add_argument("--input-size", type=parse_size, default=None, help="S or HxW (default 32)")
    p.add_argument("--classes", type=class_count, default=None, help="default: the number of classes in DATA")
    p.add_argument("--epochs", type=integer_at_least(1, MAX_EPOCHS), default=None,
                   help="default 10 (with --resume: extend the run)")
    p.add_argument("--batch-size", type=integer_at_least(1, MAX_BATCH_SIZE), default=None, help="default 128")
    p.add_argument("--lr", type=_number(0.0, open_low=True), default=None, help="peak AdamW learning rate (2e-3)")
    p.add_argument("--weight-decay", type=_number(0.0), default=None, help="AdamW weight decay (0.05)")
    p.add_argument("--label-smoothing", type=_number(0.0, 1.0), default=None, help="default 0.1")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val", default=None, help="validation images: a class folder or .npz")
    val.add_argument("--val-split", type=_number(0.0, 1.0), default=None,
                     help="fraction of DATA held out for validation (fixed by --seed)")
    p.add_argument("--weights", default=None,
                   help="start from a checkpoint (.keras, .weights.h5, .safetensors, .pth); a different --classes "
                        "gets a fresh classifier")
    p.add_argument("--freeze-backbone", action="store_true",
                   help="train only conv_head and the classifier (BatchNorm stays in inference mode)")
    p.add_argument("--seed", type=integer_at_least(0, MAX_SEED), default=None,
                   help="data order, split and init (default 0)")
    p.add_argument("--crop-pct", type=parse_crop_pct, default=None,
                   help="evaluation crop: fraction of the short side (default 0.875 from 96 pixels up, else 1)")
    p.add_argument("--interpolation", choices=("bicubic", "bilinear", "nearest", "area"), default=None)
    p.add_argument("--strategy", choices=("mirrored", "multi-worker"), default=None,
                   help="mirrored (default): this host's devices; multi-worker: the hosts of TF_CONFIG, each running "
                        "the same command (MultiWorkerMirroredStrategy; only the chief writes the files)")
    p.add_argument("--devices", type=integer_at_least(1, MAX_DEVICES), default=None,
                   help="mirrored: train on N devices under MirroredStrategy (GPUs, or N logical CPU devices "
                        "without GPU)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run written at -o")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=train, tensorflow=True)


FAMILIES = ("v1", "v2", "v3", "rep")  # registry.FAMILY_PREFIX's keys, spelled out: importing the registry loads numpy


def add_family_argument(p, default="v1"):
    p.add_argument("--family", choices=FAMILIES, default=default,
                   help="GhostNet (v1, default), GhostNetV2 (v2), GhostNetV3 (v3) or RepGhostNet (rep)")


def registered_model(name):
    """An argparse type: a registered model's name (light: the registry imports no Keras)."""
    from ghostnet_tf.registry import get_entry

    try:
        return get_entry(name).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_model_argument(p):
    p.add_argument("--model", type=registered_model, metavar="NAME",
                   help="a registered model by timm's name instead of --family/--width, e.g. ghostnetv2_100 "
                        "(ghostnet_tf.list_models())")


def info(args):
    from ghostnet_tf import build_model, create_model, format_profile, profile

    if args.model is not None and (args.family is not None or args.width is not None):
        raise UsageError(f"--model {args.model} names the family and width; drop --family/--width")
    kwargs = {"reparameterized": args.reparameterized, "input_shape": (*args.input_size, 3), "classes": args.classes}
    if args.model:
        model = create_model(args.model, **kwargs)
    else:
        model = build_model(args.family or "v1", args.width or 1.0, **kwargs)
    result = profile(model)
    if args.json:
        print_json(result)
    else:
        print(format_profile(result))


def port(args):
    from ghostnet_tf.port import port_checkpoint

    check_input_file(args.src, "src")
    check_distinct_paths(src=args.src, **{"-o/--output": args.output})
    width, classes, family = port_checkpoint(args.src, args.output, width=args.width)  # no torch: MissingDependency
    print(f"{args.output}: {family} width {width}, {classes} classes, from {args.src}")


def train(args):
    from ghostnet_tf.training import train as run_training
    from ghostnet_tf.training.config import RESUME_OPTIONS

    if args.data is None and not args.resume:
        raise UsageError("DATA is required (a class folder or .npz), unless --resume continues a run")
    if args.data is not None and args.resume:
        raise UsageError("--resume continues the run recorded at -o with its own DATA and options; drop DATA")
    options = {"model": args.model, "family": args.family, "width": args.width, "input_size": args.input_size,
               "classes": args.classes, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
               "label_smoothing": args.label_smoothing, "val": args.val, "val_split": args.val_split,
               "weights": args.weights, "freeze_backbone": args.freeze_backbone or None, "seed": args.seed,
               "crop_pct": args.crop_pct, "interpolation": args.interpolation, "strategy": args.strategy,
               "devices": args.devices}
    if args.resume:
        given = [k for k, v in options.items() if v is not None and k not in RESUME_OPTIONS]
        if given:
            raise UsageError(f"--resume takes the recorded options; drop --{given[0].replace('_', '-')}")
    if args.data is not None:
        check_distinct_paths(DATA=args.data, **{"-o/--output": args.output})
    report = run_training(args.data, args.output, resume=args.resume, show_progress=not args.no_progress,
                          **options)
    best = next((r for r in report["history"] if r["epoch"] == report["best_epoch"]), report["history"][-1])
    score = f"val top-1 {100 * best['val_accuracy']:.2f} %" if "val_accuracy" in best else \
        f"train top-1 {100 * best['accuracy']:.2f} %"
    print(f"{args.output}: epoch {best['epoch']} of {report['epochs_done']}, {score}; "
          f"{report['wall_seconds']:.0f} s; report {report['files']['report']}")
