"""``ghostnet bench ...``: this module creates the ``bench`` group; each runner module registers its own
subcommand into it through ``register(bench_sub)``. To add one (e.g. ``compare``), add its module to
``BENCH_MODULES``."""
import argparse
import importlib

from android_bench import results

# Modules whose ``register(bench_sub)`` adds a ``bench`` subcommand, in help order.
BENCH_MODULES = ("android_bench.adb_runner", "android_bench.local_runner", "android_bench.arm.commands",
                 "android_bench.compare", "android_bench.report")


def register(sub):
    bench = sub.add_parser("bench", help="measure TFLite model latency on a phone (adb) or on this CPU (local)",
                           description="Measure TFLite model latency; results go to a JSON-lines file.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    for name in BENCH_MODULES:
        importlib.import_module(name).register(bench_sub)


def integer_at_least(minimum):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


def parse_positive_list(text):
    """'1,2,4' -> [1, 2, 4] (thread counts)."""
    return [integer_at_least(1)(part) for part in str(text).split(",")]


def add_common_options(parser):
    """The options ``bench adb`` and ``bench local`` share, with the same meaning."""
    parser.add_argument("--model", required=True, help="the .tflite model to benchmark")
    parser.add_argument("--threads", type=parse_positive_list, default=[1], help="thread counts, e.g. 1,2,4 (default 1)")
    parser.add_argument("--runs", type=integer_at_least(1), default=50, help="measured runs (default 50)")
    parser.add_argument("--warmup", type=integer_at_least(0), default=5, help="warm-up runs (default 5)")
    parser.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                        help="use the XNNPACK CPU delegate (default); --no-xnnpack runs the builtin kernels")
    parser.add_argument("--json-lines", metavar="FILE", help="append one JSON record per configuration to FILE")


def _fmt(value, scale=1.0, unit=""):
    return "n/a" if value is None else f"{value / scale:.1f}{unit}"


def emit(record, json_lines):
    """Append the record (if a file was given) before printing, so what was printed is also on disk."""
    if json_lines:
        results.append_record(json_lines, record)
    stats = record["stats"]
    print(f"{record['mode']} {record['delegate']} threads={record['threads']} mask={record['cpu_mask'] or 'all'}: "
          f"median={_fmt(stats['median_us'], unit='us')} p95={_fmt(stats['p95_us'], unit='us')} "
          f"mean={_fmt(stats['mean_us'], unit='us')} std={_fmt(stats['std_us'], unit='us')} "
          f"init={_fmt(stats['init_us'], 1000, 'ms')} first={_fmt(stats['first_inference_us'], 1000, 'ms')} "
          f"peak={_fmt(record['memory'].get('peak_mb'), unit='MB')} runs={stats['count']}", flush=True)
