"""``ghostnet bench compare``: the zoo converted and measured round by round, with its report."""
import argparse
import datetime
import os

from android_bench import zoo
from android_bench.arm import estimate
from android_bench.cli.common import (MAX_ROUNDS, add_device_options, adb_session, check_folder, log, parse_cpus,
                                      rounds_count, runs_count, stops_cleanly, warmup_count)
from convert import DEFAULT_CALIBRATION_STEPS
from ghostnet_tf.cliutil import (UsageError, check_input_file, integer_at_least, parse_positive_list, parse_size, parse_width,
                                 positive_int)

COMPARE_DEFAULTS = {"runs": 50, "warmup": 5, "rounds": 3, "calibration_steps": DEFAULT_CALIBRATION_STEPS,
                    "eval_count": 16}  # fewer fidelity images than `convert`: 14 conversions per run
MAX_JOBS = 64
COMPARE_QUICK = {"runs": 10, "warmup": 2, "rounds": 1, "calibration_steps": 8, "eval_count": 4}


def parse_models(text):
    """'a,b' -> ['a', 'b']; an empty list is refused (it would silently mean the default set)."""
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected zoo model names like {', '.join(zoo.QUICK_MODELS)}, got {text!r} "
                                         "(leave --models out for the default set)")
    return names


def add(bench_sub):
    p = bench_sub.add_parser("compare", help="convert the model zoo (GhostNet vs MobileNetV2/V3) and benchmark it",
                             description="Convert GhostNet 0.5/1.0/1.3x and MobileNetV2/V3 to float32 and int8, "
                                         "benchmark them round by round and write a report.")
    p.add_argument("--target", choices=("local", "adb", "arm"), default="local",
                   help="where to measure: this CPU's latency (default), a phone's, or instructions on emulated "
                        "ARM cores (arm)")
    p.add_argument("--cpu", type=parse_cpus, default=["cortex-a76"],
                   help="emulated ARM cores for --target arm and for the ARM table (default cortex-a76)")
    p.add_argument("--arm", action=argparse.BooleanOptionalAction, default=None,
                   help="with --target local: also count instructions on the emulated --cpu cores "
                        "(default: when `ghostnet bench arm --setup` has been run)")
    p.add_argument("--device", type=estimate.parse_devices, default=[], metavar="PHONE,PHONE",
                   help="with the ARM table: also ESTIMATE milliseconds on these published phones (e.g. pixel-3) "
                        f"from the {estimate.EMULATED_CORE} counts, with their leave-one-out error; not measurements")
    p.add_argument("--models", type=parse_models, metavar="A,B",
                   help=f"subset of the zoo: {', '.join(zoo.ZOO)}")
    p.add_argument("--width", type=lambda s: [parse_width(w) for w in s.split(",")], metavar="W,W",
                   help="GhostNet widths (default 0.5,1.0,1.3)")
    p.add_argument("--input-size", type=parse_size, default=(224, 224), help="S or HxW (default 224)")
    p.add_argument("--threads", type=parse_positive_list, default=[], help="thread counts besides 1, e.g. 2,4")
    p.add_argument("--runs", type=runs_count, help=f"timed runs per round (default {COMPARE_DEFAULTS['runs']})")
    p.add_argument("--warmup", type=warmup_count,
                   help=f"warm-up runs per round (default {COMPARE_DEFAULTS['warmup']})")
    p.add_argument("--rounds", type=rounds_count,
                   help=f"rounds over all models (default {COMPARE_DEFAULTS['rounds']}, at most {MAX_ROUNDS:,})")
    p.add_argument("--calibration-steps", type=positive_int,
                   help=f"int8 calibration images (default {COMPARE_DEFAULTS['calibration_steps']})")
    p.add_argument("--jobs", type=integer_at_least(1, MAX_JOBS), default=2,
                   help=f"conversions at a time (default 2, at most {MAX_JOBS})")
    p.add_argument("--weights", metavar="PATH",
                   help="a GhostNet checkpoint for the GhostNet entry (give its width with --width; "
                        "the MobileNets keep their initialisation; default random)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {', '.join(zoo.QUICK_MODELS)} only, 1 round of {COMPARE_QUICK['runs']} runs")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<timestamp>)")
    p.add_argument("--cache-dir", metavar="DIR", default=os.path.join("runs", "cache"),
                   help="converted models are kept here and reused (default runs/cache)")
    p.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                   help="XNNPACK CPU delegate (default on)")
    adb_options = p.add_argument_group("--target adb", "the phone, as for `ghostnet bench adb`")
    add_device_options(adb_options, binary_required=False)
    p.set_defaults(func=run, tensorflow=True)


def _compare_options(args):
    """The run options: --quick or the defaults, overridden by what was given; the checkpoint and its hash."""
    from android_bench import modelfile

    defaults = COMPARE_QUICK if args.quick else COMPARE_DEFAULTS
    options = {k: v if getattr(args, k, None) is None else getattr(args, k) for k, v in defaults.items()}
    options["weights"] = options["weights_sha256"] = None
    if args.weights:
        check_input_file(args.weights, "--weights")
        options["weights"], options["weights_sha256"] = args.weights, modelfile.sha256_file(args.weights)
    return options


@stops_cleanly
def run(args):
    from android_bench import compare

    options = _compare_options(args)
    entries = zoo.select(args.models or (zoo.QUICK_MODELS if args.quick else None), args.width)
    ghostnets = [e.name for e in entries if e.family == "ghostnet"]
    if args.weights and len(ghostnets) != 1:
        raise UsageError(f"--weights: a checkpoint fits one GhostNet width, but {len(ghostnets)} GhostNet entries "
                         f"are selected ({', '.join(ghostnets) or 'none'}); give its width with --width W")
    if args.target == "adb" and not args.benchmark_binary:
        raise UsageError("--target adb needs --benchmark-binary PATH (benchmark_model built for the phone)")
    out_dir = args.out or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    check_folder(out_dir, "--out")
    compare.check_run_folder(out_dir)
    check_folder(args.cache_dir, "--cache-dir")
    # The ARM table: always for --target arm; with --target local when set up (or as --arm/--no-arm say).
    wanted_arm = True if args.target == "arm" else args.arm if args.target == "local" else bool(args.arm)
    arm_cores = args.cpu if compare.arm_available(wanted_arm, log) else ()
    if args.device and estimate.EMULATED_CORE not in arm_cores:
        raise UsageError(f"--device: estimates need the ARM table on {estimate.EMULATED_CORE} (--target arm, or "
                         f"--arm, with --cpu {estimate.EMULATED_CORE})")
    from android_bench.local_runner import LocalRunner

    # The phone is connected before the conversions, so a missing device fails in seconds, not minutes.
    runner = adb_session(args) if args.target == "adb" else None if args.target == "arm" else LocalRunner()
    if not args.weights:
        log("compare: random weights (no --weights): latency, size and instruction counts are real; the accuracy "
            "plots place each model at its architecture's published top-1, hollow")
    print(compare.run_compare(entries, args.input_size, sorted({1, *args.threads}), options, out_dir, args.cache_dir,
                              runner, args.jobs, log=log, arm_cores=arm_cores, use_xnnpack=args.xnnpack,
                              command=getattr(args, "command_line", None), devices=args.device))
