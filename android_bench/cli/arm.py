"""``ghostnet bench arm``: the real aarch64 LiteRT under qemu-user, instructions counted per inference."""
import argparse

from android_bench.arm import cpus, estimate
from android_bench.cli.common import MAX_ARM_RUNS, arm_runs_count, check_output, log, parse_cpus, stops_cleanly
from ghostnet_tf.cliutil import UsageError, check_distinct_paths, positive_int


def add(bench_sub):
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
    p.add_argument("--runs", type=arm_runs_count, default=3,
                   help=f"counted inferences after the first (default 3, at most {MAX_ARM_RUNS}; the median is "
                        "reported: the counts are exact, more runs only confirm them)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="interpreter threads; only 1: counts are per inference on one core")
    p.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                   help="use the XNNPACK CPU delegate (default); --no-xnnpack runs the builtin kernels")
    p.add_argument("--per-block", action="store_true",
                   help="also attribute the count to blocks, op types and resolutions, by counting the model cut "
                        "after every op (minutes per core under emulation); the record carries it")
    p.add_argument("--device", type=estimate.parse_devices, default=[], metavar="PHONE,PHONE",
                   help="also ESTIMATE milliseconds on these published phones from the count (e.g. pixel-3; "
                        "calibrated on the MobileNets' published latencies, with its leave-one-out error; "
                        "docs/arm.md); the exact count is unchanged")
    p.add_argument("--json-lines", metavar="FILE", help="append one JSON record per core to FILE")
    p.add_argument("--cache", metavar="DIR",
                   help="the emulator's cache folder (default $GHOSTNET_ARM_CACHE or ~/.cache/ghostnet-tf/arm)")
    p.set_defaults(func=run)


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


@stops_cleanly
def run(args):
    from android_bench import results
    from android_bench.arm import breakdown, setup
    from android_bench.arm.emulator import ArmError, Emulator
    from android_bench.runner import RunConfig

    try:
        if args.setup:
            setup.install(args.cache, log=lambda message: print(message, flush=True))
            if not args.model:
                return
        if not args.model:
            raise UsageError("bench arm: give --model M.tflite (or --setup to install the emulator)")
        if args.threads != 1:
            raise UsageError("--threads: the instruction count is per inference on one core; use --threads 1 "
                             "(the per-thread split is not counted)")
        check_distinct_paths(**{"--model": args.model, "--json-lines": args.json_lines})
        check_output(args.json_lines, "--json-lines")
        other_cores = [cpu for cpu in args.cpu if cpu != estimate.EMULATED_CORE]
        if args.device and other_cores:
            raise UsageError(f"--device: the phone calibrations are on emulated {estimate.EMULATED_CORE} counts, "
                             f"not {', '.join(other_cores)}; use --cpu {estimate.EMULATED_CORE}")
        emulator = Emulator.load(args.cache, log=log)
        run_config = RunConfig(runs=args.runs, use_xnnpack=args.xnnpack)
        for cpu in args.cpu:
            record = emulator.on(cpu).measure(args.model, run_config, per_block=args.per_block)
            if args.device:
                record["estimates"] = estimate.estimate_record(record, args.device)
            if args.json_lines:
                results.append_record(args.json_lines, record)
            print(describe_arm(record), flush=True)
            for figure in record.get("estimates", ()):
                print("  " + estimate.describe(figure), flush=True)
            if record.get("breakdown"):
                print(breakdown.format_table(record["breakdown"], f"{record['model']['path']} on {cpu}"), flush=True)
    except ArmError as exc:
        raise UsageError(str(exc)) from None
