"""Subcommands of the converter: ``ghostnet convert``, ``ghostnet eval`` and ``ghostnet predict`` (also
``python -m convert``).

Heavy imports happen inside the commands, so ``--help`` stays instant."""
import os
import sys

from convert import DEFAULT_CALIBRATION_STEPS, DEFAULT_EVAL_COUNT, IO_TYPES, QUANTIZE_MODES
from convert.opversions import DEFAULT_MIN_RUNTIME
from ghostnet_tf.cliutil import (UsageError, check_distinct_paths, check_weights_with_width, parse_crop_pct,
                                 parse_size, parse_width, positive_int, print_json)
from ghostnet_tf.commands import add_family_argument, add_model_argument


def _add_model_arguments(p, required=True):
    source = p.add_mutually_exclusive_group(required=required)
    source.add_argument("--width", type=parse_width, help="a fresh GhostNet of this width (0.5, 1.0, 1.3, ...)")
    add_model_argument(source)
    source.add_argument("--keras-model", metavar="FILE", help="a saved .keras model (GhostModule layers included)")
    add_family_argument(p)  # with --width; GhostNetV3 is built in its folded inference form
    p.add_argument("--weights", metavar="PATH", help="weights for --model/--width (checkpoint path or 'imagenet')")
    p.add_argument("--input-size", type=parse_size, help="S or HxW (default 224, or the saved model's own size)")
    p.add_argument("--import-module", action="append", default=[], metavar="MODULE",
                   help="import this Python module first, so the custom layers it registers load (repeatable)")


def _add_json_arguments(p):
    p.add_argument("--report", metavar="FILE.json", help="also write the report as JSON (atomically)")
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout instead of the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def register(sub):
    p = sub.add_parser("convert",
                       help="convert to .tflite (float32/float16/dynamic/int8/int16x8) and verify the result",
                       description="Convert a GhostNet or a saved Keras model to TFLite, audit the graph and "
                                   "measure its fidelity against the Keras float model.")
    _add_model_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.tflite", help="where to write the model")
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default="int8", help="default int8 (full-integer PTQ); int16x8: int16 activations, int8 weights")
    p.add_argument("--io", choices=IO_TYPES, help="int8 input/output tensor type (default uint8 for models taking "
                   "[0, 255] pixels, as MediaPipe and camera frames need; int8 otherwise; float modes: float32)")
    p.add_argument("--calibration", metavar="DIR|FILE",
                   help="calibration images: a folder (JPEG/PNG, recursive) or .npy/.npz (N,H,W,3) in [0,255]; "
                        "default: a built-in synthetic set (demo only)")
    p.add_argument("--calibration-steps", type=positive_int, default=DEFAULT_CALIBRATION_STEPS, metavar="N",
                   help=f"calibration images to use (default {DEFAULT_CALIBRATION_STEPS})")
    p.add_argument("--eval-images", metavar="DIR|FILE",
                   help="held-out images for the fidelity check (default: a built-in set never used for calibration)")
    p.add_argument("--eval-count", type=positive_int, default=DEFAULT_EVAL_COUNT, metavar="N",
                   help=f"images for the fidelity check (default {DEFAULT_EVAL_COUNT})")
    p.add_argument("--per-layer", action="store_true", help="add the per-layer int8 error, worst first")
    p.add_argument("--rewrite", default="auto", metavar="auto|all|none|A,B",
                   help="export-only graph rewrites, exact in float, that cut ARM instructions: "
                        "fold-normalization, late-ghost-concat, fused-small-ghost and depthwise-pool (int8 only); "
                        "and equalize-ranges (int8 only, RepGhostNet): even channel ranges for int8 accuracy. "
                        "Default auto: the ones that pay for the chosen precision")
    p.add_argument("--keep-float", metavar="auto|LAYER,...",
                   help="int8 with these layers' ops left in float (a layer name covers its sub-layers, e.g. "
                        "blocks.3.0.se; names as --per-layer prints them), or auto: the most sensitive ops, "
                        "one at a time, until --target-agreement is reached on the calibration images")
    p.add_argument("--target-agreement", type=float, metavar="PCT",
                   help="for --keep-float auto: top-1 agreement with the float model to reach (default 99)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line in output order, for the file's "
                   "metadata (default: the names a `ghostnet train` model or checkpoint carries, ImageNet's for "
                   "1000 classes)")
    p.add_argument("--author", help="the metadata's author (default ghostnet-tf)")
    p.add_argument("--license", help="the metadata's licence, e.g. that of the weights (default: not stated)")
    p.add_argument("--min-runtime", default=DEFAULT_MIN_RUNTIME, metavar="VERSION",
                   help=f"the oldest TFLite runtime that must load the file (default {DEFAULT_MIN_RUNTIME}, "
                        "tflite-runtime's last release): converter options are chosen for it, or nothing is written")
    _add_json_arguments(p)
    p.set_defaults(func=convert_command, tensorflow=True)

    p = sub.add_parser("eval", help="top-1/top-5 of a Keras model and a .tflite file on an ImageNet-style folder",
                       description="Accuracy on DATA (one sub-folder per class, sorted = label index, or "
                                   "--labels FILE with 'relative/path label' lines), Keras float vs .tflite.")
    p.add_argument("data", metavar="DATA", help="image folder, or a .npz with images (N, H, W, 3) and labels (N,)")
    p.add_argument("--tflite", metavar="FILE.tflite", help="the converted model")
    _add_model_arguments(p, required=False)
    p.add_argument("--labels", metavar="FILE", help="lines 'relative/path label_index' instead of class folders")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="evaluate N images only, evenly spaced over the sorted list (not the first N)")
    p.add_argument("--crop-pct", type=parse_crop_pct, metavar="F",
                   help="evaluation crop as a fraction of the short side (default: the one a `ghostnet train` model "
                        "records, else ImageNet's 0.875; 1 = the whole image, e.g. for 32x32 CIFAR at 32)")
    _add_json_arguments(p)
    p.set_defaults(func=eval_command, tensorflow=True)

    p = sub.add_parser("predict", help="class names and scores for photos, by a .tflite or .keras model",
                       description="Classify images with a .tflite file (prepared by its own metadata: transform, "
                                   "normalization, class names) or a Keras model (its recorded transform).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG files")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--tflite", metavar="FILE.tflite", help="a converted model")
    model.add_argument("--keras-model", metavar="FILE", help="a saved .keras model")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line, for a Keras model without them")
    p.add_argument("--top", type=positive_int, default=5, metavar="K", help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=predict_command, tensorflow=True)


def _resolve_model(args):
    """--model NAME is --family and --width of its registry entry."""
    if getattr(args, "model", None) is not None:
        from ghostnet_tf.registry import get_entry

        entry = get_entry(args.model)
        args.family, args.width = entry.family, entry.width


def _check_paths(args, inputs, outputs):
    """Before any work: no output overwrites an input or another output, and every output can be written."""
    from ghostnet_tf.files import check_writable

    check_weights_with_width(args.weights, args.width)
    check_distinct_paths(**inputs, **outputs)
    for option, path in outputs.items():
        if path is not None and option != "--output":  # the conversion job checks its output itself
            check_writable(path, option)


def _warn(text):
    print(f"warning: {text}", file=sys.stderr)


def _emit(report, args, formatter, written=False):
    """Write --report (unless the command published it with its outputs), then print the report."""
    from convert.report import write_json

    if args.report and not written:
        write_json(report, args.report)
    if args.json:
        print_json(report)
    else:
        print(formatter(report))


def _model_inputs(args, *options):
    """{option: path} of the input files of a command: the model's and the named options'."""
    names = ("--keras-model", "--weights", *options)
    return {name: getattr(args, name[2:].replace("-", "_")) for name in names}


def convert_command(args):
    from convert.api import convert
    from convert.metadata import read_labels_file
    from convert.mixed import parse_keep_float
    from convert.report import format_conversion
    from convert.rewrites import parse_rewrites
    from convert.source import load_keras_model
    from convert.spec import ConversionSpec, FileOptions

    _resolve_model(args)
    _check_paths(args, _model_inputs(args, "--calibration", "--eval-images", "--labels"),
                 {"--output": args.output, "--report": args.report})
    labels = read_labels_file(args.labels) if args.labels else None
    spec = ConversionSpec(
        quantize=args.quantize, io=args.io, calibration=args.calibration, calibration_steps=args.calibration_steps,
        eval_images=args.eval_images, eval_count=args.eval_count, input_size=args.input_size,
        rewrite=parse_rewrites(args.rewrite, args.quantize),
        keep_float=parse_keep_float(args.keep_float, args.target_agreement), per_layer=args.per_layer,
        file=FileOptions(labels=labels, author=args.author, license=args.license, min_runtime=args.min_runtime))
    if args.width is not None and args.weights is None:
        print(f"warning: {'--model' if args.model else '--width'} without --weights: random weights; the file's "
              "size and speed are real, its fidelity figures say nothing about accuracy (give --weights imagenet "
              "or a checkpoint)", file=sys.stderr)
    if args.quantize in ("int8", "int16x8") and args.calibration is None:
        print("warning: no --calibration given: calibrating on built-in synthetic images (demo only); real images "
              "from the target domain give better int8 accuracy", file=sys.stderr)
    source = load_keras_model(args.width, args.weights, args.keras_model, args.input_size, args.import_module,
                              args.family)
    report = convert(source, args.output, spec, show_progress=not args.no_progress, report_path=args.report,
                     warn=_warn).to_json()
    _emit(report, args, format_conversion, written=True)


def predict_command(args):
    from convert.metadata import read_labels_file
    from convert.predict import format_predictions, predict_images
    from convert.source import load_keras_model

    for path in [*args.images, args.tflite or args.keras_model, args.labels]:
        if path is not None and not os.path.lexists(path):
            raise UsageError(f"no such file: {path!r}")
    if args.labels and args.tflite:
        raise UsageError("--labels: a .tflite file carries its own class names (give them at conversion)")
    labels = read_labels_file(args.labels) if args.labels else None
    model = load_keras_model(keras_model=args.keras_model) if args.keras_model else None
    report = predict_images(args.images, tflite=args.tflite, model=model, labels=labels, top=args.top)
    if args.json:
        print_json(report)
    else:
        print(format_predictions(report))


def eval_command(args):
    from convert.evaluation import evaluate
    from convert.report import format_evaluation
    from convert.source import load_keras_model

    _resolve_model(args)
    if args.tflite is None and args.width is None and args.keras_model is None:
        raise UsageError("give --tflite FILE and/or a Keras model (--model NAME, --width W or --keras-model FILE)")
    _check_paths(args, _model_inputs(args, "--tflite", "--labels"), {"--report": args.report})
    model = None
    if args.width is not None or args.keras_model is not None:
        model = load_keras_model(args.width, args.weights, args.keras_model, args.input_size, args.import_module,
                                 args.family)
    report = evaluate(args.data, model=model, tflite=args.tflite, labels=args.labels, limit=args.limit,
                      input_size=args.input_size, show_progress=not args.no_progress, crop_pct=args.crop_pct)
    _emit(report, args, format_evaluation)
