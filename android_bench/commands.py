"""``ghostnet bench ...``: every bench subcommand's arguments, checks and printing, in one place.

The library modules (adb_runner, local_runner, compare, report) do the work, raise ordinary exceptions
and report progress through a callback, so they serve notebooks as well. To add a subcommand, add its
``add_parser`` call to ``register`` and its handler here. Heavy imports happen inside the handlers, so
``--help`` stays instant."""
import argparse
import datetime
import os
import sys

from android_bench import zoo
from android_bench.arm import cpus
from convert import DEFAULT_CALIBRATION_STEPS
from ghostnet_tf.cliutil import (UsageError, check_distinct_paths, integer_at_least, parse_positive_list, parse_size,
                                 parse_width, positive_int)

COMPARE_DEFAULTS = {"runs": 50, "warmup": 5, "rounds": 3, "calibration_steps": DEFAULT_CALIBRATION_STEPS,
                    "eval_count": 16}  # fewer fidelity images than `convert`: 14 conversions per run
COMPARE_QUICK = {"runs": 10, "warmup": 2, "rounds": 1, "calibration_steps": 8, "eval_count": 4}


def log(message):
    """Progress for people: stderr, so stdout keeps only the results."""
    print(message, file=sys.stderr, flush=True)


def parse_cpu_mask(text):
    """'big', 'all' or a hex core mask ('f0', '0xF0') -> 'big' | 'all' | 'f0'."""
    word = str(text).strip().lower()
    if word in ("big", "all"):
        return word
    try:
        mask = int(word, 16)
    except ValueError:
        mask = 0
    if mask <= 0:
        raise argparse.ArgumentTypeError(f"expected big, all or a hex core mask like f0, got {text!r}")
    return format(mask, "x")


def parse_cpus(text):
    """'cortex-a76,cortex-a53' -> the emulated cores, each known to qemu and to cpus.py."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected cores like cortex-a76,cortex-a53, got {text!r}")
    try:
        return [cpus.core(name).name for name in names]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_common_options(parser):
    """The options ``bench adb`` and ``bench local`` share, with the same meaning."""
    parser.add_argument("--model", required=True, help="the .tflite model to benchmark")
    parser.add_argument("--threads", type=parse_positive_list, default=[1], help="thread counts, e.g. 1,2,4 (default 1)")
    parser.add_argument("--runs", type=positive_int, default=50, help="measured runs (default 50)")
    parser.add_argument("--warmup", type=integer_at_least(0), default=5, help="warm-up runs (default 5)")
    parser.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                        help="use the XNNPACK CPU delegate (default); --no-xnnpack runs the builtin kernels")
    parser.add_argument("--json-lines", metavar="FILE", help="append one JSON record per configuration to FILE")


def add_device_options(parser, binary_required=True):
    """The phone options of ``bench adb``, shared with ``bench compare --target adb``."""
    parser.add_argument("--benchmark-binary", required=binary_required, metavar="PATH",
                        help="benchmark_model for the phone (e.g. android_aarch64_benchmark_model)")
    parser.add_argument("--serial", help="the device to use when several are connected (see adb devices)")
    parser.add_argument("--cpu-mask", type=parse_cpu_mask, default="big",
                        help="pin with taskset: big (the fastest cores, default), all (no pinning) or a hex mask")
    parser.add_argument("--cooldown-s", type=float, default=5.0, help="pause between configurations (default 5)")
    parser.add_argument("--max-thermal-wait-s", type=float, default=300.0,
                        help="longest wait for the thermal status to reach 0 before each run (default 300)")
    parser.add_argument("--thermal-poll-s", type=float, default=10.0, help="thermal status poll interval (default 10)")


def register(sub):
    bench = sub.add_parser("bench", help="latency on a phone (adb) or this CPU (local), instruction counts on emulated "
                                    "ARM cores (arm), the model comparison (compare) and its report (report)",
                           description="Measure TFLite model latency; results go to a JSON-lines file.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)

    p = bench_sub.add_parser("adb", help="benchmark on an Android phone with benchmark_model over adb",
                             description="Push the model and TFLite's benchmark_model to a phone, run one "
                                         "benchmark per threads x delegate, and record the results.")
    add_common_options(p)
    add_device_options(p)
    p.add_argument("--gpu", action="store_true", help="also run with the GPU delegate")
    p.add_argument("--nnapi", action="store_true", help="also run with the NNAPI delegate")
    p.add_argument("--op-profile", action="store_true", help="per-op profiling, summarized per op type")
    p.set_defaults(func=bench_adb)

    p = bench_sub.add_parser("local", help="benchmark with LiteRT in this process (this machine or an ARM board)",
                             description="Benchmark a .tflite model in-process with LiteRT, like benchmark_model.")
    add_common_options(p)
    p.set_defaults(func=bench_local)

    p = bench_sub.add_parser(
        "arm", help="count a model's instructions per inference on emulated ARM cores (qemu, no phone needed)",
        description="Run a .tflite model on the real aarch64 LiteRT under qemu-user and count the guest "
                    "instructions per inference exactly. Instruction counts are not milliseconds: no caches, "
                    "no memory stalls, no pipeline; they compare models on one core.")
    p.add_argument("--setup", action="store_true",
                   help="install the emulator into the cache (idempotent; needs apt-get as root, or qemu-user and "
                        "gcc installed by hand)")
    p.add_argument("--model", help="the .tflite model to run")
    p.add_argument("--cpu", type=parse_cpus, default=["cortex-a76"],
                   help=f"emulated cores, comma-separated (default cortex-a76); of {', '.join(cpus.CORES)}")
    p.add_argument("--runs", type=positive_int, default=3,
                   help="counted inferences after the first (default 3; the median is reported)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="interpreter threads; only 1: counts are per inference on one core")
    p.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                   help="use the XNNPACK CPU delegate (default); --no-xnnpack runs the builtin kernels")
    p.add_argument("--per-block", action="store_true",
                   help="also attribute the count to blocks, op types and resolutions, by counting the model cut "
                        "after every op (minutes per core under emulation); the record carries it")
    p.add_argument("--json-lines", metavar="FILE", help="append one JSON record per core to FILE")
    p.add_argument("--cache", metavar="DIR",
                   help="the emulator's cache folder (default $GHOSTNET_ARM_CACHE or ~/.cache/ghostnet-tf/arm)")
    p.set_defaults(func=bench_arm)

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
    p.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], metavar="A,B",
                   help=f"subset of the zoo: {', '.join(zoo.ZOO)}")
    p.add_argument("--width", type=lambda s: [parse_width(w) for w in s.split(",")], metavar="W,W",
                   help="GhostNet widths (default 0.5,1.0,1.3)")
    p.add_argument("--input-size", type=parse_size, default=(224, 224), help="S or HxW (default 224)")
    p.add_argument("--threads", type=parse_positive_list, default=[], help="thread counts besides 1, e.g. 2,4")
    p.add_argument("--runs", type=positive_int, help=f"timed runs per round (default {COMPARE_DEFAULTS['runs']})")
    p.add_argument("--warmup", type=integer_at_least(0),
                   help=f"warm-up runs per round (default {COMPARE_DEFAULTS['warmup']})")
    p.add_argument("--rounds", type=positive_int, help=f"rounds over all models (default {COMPARE_DEFAULTS['rounds']})")
    p.add_argument("--calibration-steps", type=positive_int,
                   help=f"int8 calibration images (default {COMPARE_DEFAULTS['calibration_steps']})")
    p.add_argument("--jobs", type=positive_int, default=2, help="conversions at a time (default 2)")
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
    p.set_defaults(func=bench_compare, tensorflow=True)

    p = bench_sub.add_parser("report", help="markdown/CSV tables and PNG plots from a results file",
                             description="Report a JSON-lines results file: report.md, report.csv and plots.")
    p.add_argument("results", metavar="RESULTS.jsonl", help="results written by bench adb/local/compare")
    p.add_argument("--out", metavar="DIR", help="where to write (default: the results file's folder)")
    p.add_argument("--baseline", help=f"model for the ratio column (default {zoo.DEFAULT_BASELINE})")
    p.set_defaults(func=bench_report)


def _fmt(value, scale=1.0, unit=""):
    return "n/a" if value is None else f"{value / scale:.1f}{unit}"


def emit(record, json_lines):
    """Append the record (if a file was given) before printing, so what was printed is also on disk."""
    from android_bench import results

    if json_lines:
        results.append_record(json_lines, record)
    stats = record["stats"]
    print(f"{record['mode']} {record['delegate']} threads={record['threads']} mask={record['cpu_mask'] or 'all'}: "
          f"median={_fmt(stats['median_us'], unit='us')} p95={_fmt(stats['p95_us'], unit='us')} "
          f"mean={_fmt(stats['mean_us'], unit='us')} std={_fmt(stats['std_us'], unit='us')} "
          f"init={_fmt(stats['init_us'], 1000, 'ms')} first={_fmt(stats['first_inference_us'], 1000, 'ms')} "
          f"peak={_fmt(record['memory'].get('peak_mb'), unit='MB')} runs={stats['count']}", flush=True)


def _check_output(path, option):
    from ghostnet_tf.files import check_writable

    if path:
        check_writable(path, option)


def _check_folder(path, option):
    """A folder to create or fill, checked before any work: not a file, and its nearest existing ancestor
    takes new files."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{option}: {existing!r} is a file; give a folder")
    _check_output(os.path.join(existing, ".probe"), option)


def adb_session(args):
    """Connect to the phone and push the binary: the first device contact of ``bench adb`` and ``compare``."""
    from android_bench.adb_runner import AdbSession

    return AdbSession(args.benchmark_binary, args.serial, args.cpu_mask, args.xnnpack, args.cooldown_s,
                      args.max_thermal_wait_s, args.thermal_poll_s, getattr(args, "op_profile", False), log=log)


def bench_adb(args):
    from android_bench import device, modelfile

    # Everything checkable without a phone is checked first.
    modelfile.check_tflite(args.model)
    modelfile.elf_abi(args.benchmark_binary)
    check_distinct_paths(**{"--model": args.model, "--benchmark-binary": args.benchmark_binary,
                            "--json-lines": args.json_lines})
    _check_output(args.json_lines, "--json-lines")
    session = adb_session(args)
    delegates = ["xnnpack" if args.xnnpack else "cpu"] + ["gpu"] * args.gpu + ["nnapi"] * args.nnapi
    written = 0
    try:
        for delegate in delegates:
            for threads in args.threads:
                emit(session.measure(args.model, threads, delegate, args.runs, args.warmup), args.json_lines)
                written += 1
    except device.DeviceLost as exc:
        kept = f"; the {written} record(s) already in {args.json_lines} stay valid" if args.json_lines and written else ""
        raise device.DeviceLost(f"{exc}{kept}") from None


def bench_local(args):
    from android_bench.local_runner import run_local

    check_distinct_paths(**{"--model": args.model, "--json-lines": args.json_lines})
    _check_output(args.json_lines, "--json-lines")
    for threads in args.threads:
        emit(run_local(args.model, threads=threads, runs=args.runs, warmup=args.warmup, use_xnnpack=args.xnnpack),
             args.json_lines)


def _compare_options(args):
    """The run options: --quick or the defaults, overridden by what was given; the checkpoint and its hash."""
    from android_bench import modelfile

    defaults = COMPARE_QUICK if args.quick else COMPARE_DEFAULTS
    options = {k: v if getattr(args, k, None) is None else getattr(args, k) for k, v in defaults.items()}
    options["weights"] = options["weights_sha256"] = None
    if args.weights:
        if not os.path.isfile(args.weights):
            raise UsageError(f"--weights: no such file: {args.weights}")
        options["weights"], options["weights_sha256"] = args.weights, modelfile.sha256_file(args.weights)
    return options


def bench_compare(args):
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
    _check_folder(out_dir, "--out")
    _check_folder(args.cache_dir, "--cache-dir")
    # The ARM table: always for --target arm; with --target local when set up (or as --arm/--no-arm say).
    wanted_arm = True if args.target == "arm" else args.arm if args.target == "local" else bool(args.arm)
    arm_cores = args.cpu if compare.arm_available(wanted_arm, log) else ()
    # The phone is connected before the conversions, so a missing device fails in seconds, not minutes.
    measure = (compare.adb_measure(adb_session(args), options) if args.target == "adb"
               else None if args.target == "arm" else compare.local_measure(options, args.xnnpack))
    if not args.weights:
        log("compare: random weights (no --weights): latency, size and instruction counts are real; the accuracy "
            "plots place each model at its architecture's published top-1, hollow")
    os.makedirs(out_dir, exist_ok=True)
    print(compare.run_compare(entries, args.input_size, sorted({1, *args.threads}), options, out_dir, args.cache_dir,
                              measure, args.jobs, log=log, arm_cores=arm_cores, use_xnnpack=args.xnnpack,
                              command=getattr(args, "command_line", None)))


def describe_arm(record):
    """One line for an arm-emulated record: instructions, never time."""
    counts, agreement = record["instructions"], record["host_agreement"]
    mm = f", i8mm {counts['i8mm_per_inference'] / 1e6:.2f} M" if counts["i8mm_per_inference"] else ""
    exact = "bit-exact" if agreement["bit_exact"] else f"max |diff| {agreement['max_abs_diff']:.3g}"
    return (f"arm-emulated {record['device']['cpu']} {record['delegate']} {record['model']['input_dtype']}: "
            f"{counts['per_inference'] / 1e6:.2f} M instructions per inference "
            f"(first {counts['first_inference'] / 1e6:.2f} M), dot-product "
            f"{counts['dot_product_per_inference'] / 1e6:.2f} M{mm}; vs {agreement['host_runtime']} on "
            f"{agreement['host_machine']}: {exact}")


def bench_arm(args):
    from android_bench import results
    from android_bench.arm import breakdown, emulator, install

    try:
        if args.setup:
            install.setup(args.cache, log=lambda message: print(message, flush=True))
            if not args.model:
                return
        if not args.model:
            raise UsageError("bench arm: give --model M.tflite (or --setup to install the emulator)")
        if args.threads != 1:
            raise UsageError("--threads: the instruction count is per inference on one core; use --threads 1 "
                             "(the per-thread split is not counted)")
        check_distinct_paths(**{"--model": args.model, "--json-lines": args.json_lines})
        _check_output(args.json_lines, "--json-lines")
        for cpu in args.cpu:
            record = emulator.emulate(args.model, cpu, runs=args.runs, use_xnnpack=args.xnnpack, cache=args.cache,
                                      per_block=args.per_block, log=log)
            if args.json_lines:
                results.append_record(args.json_lines, record)
            print(describe_arm(record), flush=True)
            if record.get("breakdown"):
                print(breakdown.format_table(record["breakdown"], f"{record['model']['path']} on {cpu}"), flush=True)
    except install.ArmError as exc:
        raise UsageError(str(exc)) from None


def bench_report(args):
    from android_bench import report

    if os.path.isdir(args.results):
        raise UsageError(f"{args.results!r} is a folder; give the results file in it (e.g. results.jsonl)")
    if not os.path.isfile(args.results):
        raise UsageError(f"results file {args.results!r} does not exist")
    out_dir = args.out or os.path.dirname(os.path.abspath(args.results))
    _check_folder(out_dir, "--out")
    print(report.write_report(args.results, out_dir, args.baseline, getattr(args, "command_line", None)))
    print(f"report: report.md, report.csv and plots in {out_dir}")
