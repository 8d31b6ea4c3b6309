"""``bench adb``: TFLite's benchmark_model on an Android phone, one run per (threads x delegate)."""
import argparse
import os
import shlex
import sys
import time

from android_bench import device, modelfile, results
from android_bench.cli import add_common_options, emit
from android_bench.parsing import parse_benchmark_output
from ghostnet_tf.cli import UsageError


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


def resolve_cpu_mask(choice, facts):
    """The hex mask for ``taskset`` or None (no pinning) for the device described by ``facts``."""
    all_cores = (1 << facts["cores"]) - 1
    if choice == "all":
        return None
    mask = sum(1 << cpu for cpu in facts["big_cores"]) if choice == "big" else int(choice, 16)
    if mask & ~all_cores:
        raise UsageError(f"cpu mask {choice} names cores that device {facts['serial']} lacks "
                         f"(it has {facts['cores']}: mask {format(all_cores, 'x')})")
    return None if mask == all_cores else format(mask, "x")


def benchmark_command(binary, model, threads, delegate, runs, warmup, use_xnnpack, op_profile, cpu_mask):
    """The remote shell command of one configuration; stderr joins stdout so the log keeps its order.

    ``--min_secs=0``/``--warmup_min_secs=0`` make the run counts exactly ``runs``/``warmup``, as in ``bench local``.
    """
    flags = [f"--graph={model}", f"--num_threads={threads}", f"--num_runs={runs}", f"--warmup_runs={warmup}",
             "--min_secs=0", "--warmup_min_secs=0", f"--use_xnnpack={str(use_xnnpack).lower()}",
             "--report_peak_memory_footprint=true"]
    if delegate in ("gpu", "nnapi"):
        flags.append(f"--use_{delegate}=true")
    if op_profile:
        flags.append("--enable_op_profiling=true")
    prefix = ["taskset", cpu_mask] if cpu_mask else []
    return " ".join(shlex.quote(part) for part in [*prefix, binary, *flags]) + " 2>&1"


def register(bench_sub):
    parser = bench_sub.add_parser("adb", help="benchmark on an Android phone with benchmark_model over adb",
                                  description="Push the model and TFLite's benchmark_model to a phone, run one "
                                              "benchmark per threads x delegate, and record the results.")
    add_common_options(parser)
    parser.add_argument("--benchmark-binary", required=True, metavar="PATH",
                        help="benchmark_model for the phone (e.g. android_aarch64_benchmark_model)")
    parser.add_argument("--serial", help="the device to use when several are connected (see adb devices)")
    parser.add_argument("--cpu-mask", type=parse_cpu_mask, default="big",
                        help="pin with taskset: big (the fastest cores, default), all (no pinning) or a hex mask")
    parser.add_argument("--gpu", action="store_true", help="also run with the GPU delegate")
    parser.add_argument("--nnapi", action="store_true", help="also run with the NNAPI delegate")
    parser.add_argument("--cooldown-s", type=float, default=5.0, help="pause between configurations (default 5)")
    parser.add_argument("--max-thermal-wait-s", type=float, default=300.0,
                        help="longest wait for the thermal status to reach 0 before each run (default 300)")
    parser.add_argument("--thermal-poll-s", type=float, default=10.0, help="thermal status poll interval (default 10)")
    parser.add_argument("--op-profile", action="store_true", help="per-op profiling, summarized per op type")
    parser.set_defaults(func=bench_adb)


def bench_adb(args):
    # Everything checkable without a phone is checked first.
    model = modelfile.check_tflite(args.model)
    binary_abi = modelfile.elf_abi(args.benchmark_binary)
    if args.json_lines:
        results.check_appendable(args.json_lines)
    adb = device.connect(args.serial)
    facts = device.facts(adb)
    if binary_abi not in facts["abilist"]:
        raise UsageError(f"benchmark binary {args.benchmark_binary} is built for {binary_abi} but device "
                         f"{adb.serial} runs {', '.join(facts['abilist']) or 'an unknown ABI'}")
    cpu_mask = resolve_cpu_mask(args.cpu_mask, facts)
    remote_model = f"{device.DEVICE_DIR}/{os.path.basename(args.model)}"
    remote_binary = f"{device.DEVICE_DIR}/{os.path.basename(args.benchmark_binary)}"
    for local, remote in ((args.model, remote_model), (args.benchmark_binary, remote_binary)):
        action = "pushed" if device.push(adb, local, remote) else "already on the device, not pushed:"
        print(f"{action} {remote}", file=sys.stderr)
    adb.shell(f"chmod 755 {shlex.quote(remote_binary)}")
    runtime = {"name": "benchmark_model", "version": None, "binary": os.path.basename(args.benchmark_binary),
               "binary_sha256": modelfile.sha256_file(args.benchmark_binary)}
    delegates = ["xnnpack" if args.xnnpack else "cpu"] + ["gpu"] * args.gpu + ["nnapi"] * args.nnapi
    configs = [(threads, delegate) for delegate in delegates for threads in args.threads]
    written = 0
    try:
        for index, (threads, delegate) in enumerate(configs):
            if index and args.cooldown_s > 0:
                print(f"cooling down {args.cooldown_s:g} s", file=sys.stderr, flush=True)
                time.sleep(args.cooldown_s)
            thermal = device.wait_until_cool(adb, args.max_thermal_wait_s, args.thermal_poll_s)
            command = benchmark_command(remote_binary, remote_model, threads, delegate, args.runs, args.warmup,
                                        args.xnnpack, args.op_profile, cpu_mask)
            output = adb.shell(command, timeout=1800)
            timings = parse_benchmark_output(output)
            timings["memory"]["source"] = "benchmark_model (peak via periodic monitoring)"
            record = results.make_record(mode="adb", model=model, runtime=runtime, delegate=delegate,
                                         threads=threads, cpu_mask=cpu_mask, device=facts, timings=timings,
                                         thermal=thermal, raw_output=output)
            emit(record, args.json_lines)
            written += 1
    except device.DeviceLost as exc:
        kept = f"; the {written} record(s) already in {args.json_lines} stay valid" if args.json_lines and written else ""
        raise device.DeviceLost(f"{exc}{kept}") from None
