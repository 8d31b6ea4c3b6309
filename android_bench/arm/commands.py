"""``ghostnet bench arm``: set up the emulator, or count a model's instructions on emulated ARM cores."""
import argparse

from android_bench.arm import cpus
from android_bench.cli import integer_at_least
from ghostnet_tf.cli import UsageError
from ghostnet_tf.files import check_writable


def parse_cpus(text):
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    try:
        return [cpus.core(n).name for n in names] or [cpus.core("")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(bench_sub):
    parser = bench_sub.add_parser(
        "arm", help="count a model's instructions per inference on emulated ARM cores (qemu, no phone needed)",
        description="Run a .tflite model on the real aarch64 LiteRT under qemu-user and count the guest "
                    "instructions per inference exactly. Instruction counts are not milliseconds: no caches, "
                    "no memory stalls, no pipeline; they compare models on one core.")
    parser.add_argument("--setup", action="store_true",
                        help="install the emulator into the cache (idempotent; needs apt-get as root, or "
                             "qemu-user and gcc installed by hand)")
    parser.add_argument("--model", help="the .tflite model to run")
    parser.add_argument("--cpu", type=parse_cpus, default=["cortex-a76"],
                        help=f"emulated cores, comma-separated (default cortex-a76); one of {', '.join(cpus.CORES)}")
    parser.add_argument("--runs", type=integer_at_least(1), default=3,
                        help="counted inferences after the first (default 3; the median is reported)")
    parser.add_argument("--threads", type=integer_at_least(1), default=1,
                        help="interpreter threads; only 1: counts are per inference on one core")
    parser.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                        help="use the XNNPACK CPU delegate (default); --no-xnnpack runs the builtin kernels")
    parser.add_argument("--per-block", action="store_true",
                        help="also attribute the count to blocks, op types and resolutions, by counting the model "
                             "cut after every op (minutes per core under emulation); the record carries it")
    parser.add_argument("--json-lines", metavar="FILE", help="append one JSON record per core to FILE")
    parser.add_argument("--cache", metavar="DIR", help="the emulator's cache folder "
                                                       "(default $GHOSTNET_ARM_CACHE or ~/.cache/ghostnet-tf/arm)")
    parser.set_defaults(func=bench_arm)


def describe(record):
    """One line for a record: instructions are never shown as time."""
    counts, agreement = record["instructions"], record["host_agreement"]
    mm = f", i8mm {counts['i8mm_per_inference'] / 1e6:.2f} M" if counts["i8mm_per_inference"] else ""
    exact = "bit-exact" if agreement["bit_exact"] else f"max |diff| {agreement['max_abs_diff']:.3g}"
    return (f"arm-emulated {record['device']['cpu']} {record['delegate']} {record['model']['input_dtype']}: "
            f"{counts['per_inference'] / 1e6:.2f} M instructions per inference (first {counts['first_inference'] / 1e6:.2f} M), "
            f"dot-product {counts['dot_product_per_inference'] / 1e6:.2f} M{mm}; vs {agreement['host_runtime']} "
            f"on {agreement['host_machine']}: {exact}")


def bench_arm(args):
    from android_bench import results
    from android_bench.arm import breakdown, emulator, install

    try:
        if args.setup:
            install.setup(args.cache, log=lambda message: print(message, flush=True))
            if not args.model:
                return 0
        if not args.model:
            raise UsageError("bench arm: give --model M.tflite (or --setup to install the emulator)")
        if args.threads != 1:
            raise UsageError("--threads: the instruction count is per inference on one core; use --threads 1 "
                             "(the per-thread split is not counted)")
        if args.json_lines:
            check_writable(args.json_lines, "--json-lines")
        for cpu in args.cpu:
            record = emulator.emulate(args.model, cpu, runs=args.runs, use_xnnpack=args.xnnpack, cache=args.cache,
                                      per_block=args.per_block, log=lambda message: print(message, flush=True))
            if args.json_lines:
                results.append_record(args.json_lines, record)
            print(describe(record), flush=True)
            if record.get("breakdown"):
                print(breakdown.format_table(record["breakdown"], f"{record['model']['path']} on {cpu}"), flush=True)
    except install.ArmError as exc:
        raise UsageError(str(exc)) from None
    return 0
