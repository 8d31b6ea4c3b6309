"""What the bench subcommands share: progress to stderr, the option types and option groups, the run
configurations they give, output checks, the one-line record print, the phone session."""
import argparse
import functools
import math
import os
import signal
import sys
import threading

from android_bench.arm import cpus
from ghostnet_tf.cliutil import UsageError, integer_at_least, parse_positive_list


# Bounds of the run counts: far beyond any useful measurement, so that a typo fails at once instead of
# running for days (an emulated inference of a GhostNet takes about ten seconds).
MAX_RUNS, MAX_WARMUP, MAX_ROUNDS, MAX_ARM_RUNS, MAX_WAIT_S = 100_000, 10_000, 1_000, 100, 86_400
runs_count = integer_at_least(1, MAX_RUNS)
warmup_count = integer_at_least(0, MAX_WARMUP)
rounds_count = integer_at_least(1, MAX_ROUNDS)
arm_runs_count = integer_at_least(1, MAX_ARM_RUNS)


def seconds(positive=False):
    """An argparse type: a finite number of seconds, >= 0 (or > 0 if ``positive``), at most a day."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > 0 if positive else value >= 0) and value <= MAX_WAIT_S):
            raise argparse.ArgumentTypeError(f"expected seconds {'> 0' if positive else '>= 0'} and at most "
                                             f"{MAX_WAIT_S:,}, got {text!r}")
        return value
    return parse


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` runs, as after Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def stops_cleanly(run):
    """A subcommand handler that SIGTERM stops as Ctrl-C does: through its ``finally`` blocks (emulated guests
    and worker processes ended, temporary folders removed, partial files dropped), then exit status 143."""
    @functools.wraps(run)
    def handler(args):
        if threading.current_thread() is not threading.main_thread():
            return run(args)
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return run(args)
        except Terminated:
            print("ghostnet: terminated", file=sys.stderr, flush=True)
            raise SystemExit(128 + signal.SIGTERM) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    return handler


def log(message):
    """Progress for people: stderr, so stdout keeps only the results."""
    print(message, file=sys.stderr, flush=True)


def warn(message):
    """A problem the command works around: one ``warning:`` line on stderr."""
    log(f"warning: {message}")


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
    parser.add_argument("--threads", type=parse_positive_list, default=[1],
                        help="thread counts, e.g. 1,2,4 (default 1)")
    parser.add_argument("--runs", type=runs_count, default=50, help=f"measured runs (default 50, at most {MAX_RUNS:,})")
    parser.add_argument("--warmup", type=warmup_count, default=5,
                        help=f"warm-up runs (default 5, at most {MAX_WARMUP:,})")
    parser.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                        help="use the XNNPACK CPU delegate (default); --no-xnnpack runs the builtin kernels")
    parser.add_argument("--json-lines", metavar="FILE", help="append one JSON record per configuration to FILE")


def run_configs(args, accelerators=(None,)):
    """The ``RunConfig`` of each accelerator (None: the CPU) x thread count of ``add_common_options``."""
    from android_bench.runner import RunConfig

    return [RunConfig(threads=threads, runs=args.runs, warmup=args.warmup, use_xnnpack=args.xnnpack,
                      accelerator=accelerator) for accelerator in accelerators for threads in args.threads]


def add_device_options(parser, binary_required=True):
    """The phone options of ``bench adb``, shared with ``bench compare --target adb``."""
    parser.add_argument("--benchmark-binary", required=binary_required, metavar="PATH",
                        help="benchmark_model for the phone (e.g. android_aarch64_benchmark_model)")
    parser.add_argument("--serial", help="the device to use when several are connected (see adb devices)")
    parser.add_argument("--cpu-mask", type=parse_cpu_mask, default="big",
                        help="pin with taskset: big (the fastest cores, default), all (no pinning) or a hex mask")
    parser.add_argument("--cooldown-s", type=seconds(), default=5.0, help="pause between configurations (default 5)")
    parser.add_argument("--max-thermal-wait-s", type=seconds(), default=300.0,
                        help="longest wait for the thermal status to reach 0 before each run (default 300)")
    parser.add_argument("--thermal-poll-s", type=seconds(positive=True), default=10.0,
                        help="thermal status poll interval (default 10)")


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


def check_output(path, option):
    from ghostnet_tf.files import check_writable

    if path:
        check_writable(path, option)


def check_folder(path, option):
    """A folder to create or fill, checked before any work: not a file, and its nearest existing ancestor
    takes new files."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{option}: {existing!r} is a file; give a folder")
    check_output(os.path.join(existing, ".probe"), option)


def adb_session(args):
    """Connect to the phone and push the binary: the first device contact of ``bench adb`` and ``compare``."""
    from android_bench.adb_runner import AdbSession

    return AdbSession(args.benchmark_binary, args.serial, args.cpu_mask, args.cooldown_s, args.max_thermal_wait_s,
                      args.thermal_poll_s, getattr(args, "op_profile", False), log=log)
