"""``ghostnet bench ...``: one module per subcommand (its arguments, checks and printing), registered here.

The library modules (adb_runner, local_runner, compare, report) do the work, raise ordinary exceptions and
report progress through a callback, so they serve notebooks as well. To add a subcommand, add a module with
``add(bench_sub)`` and a handler, and list it in SUBCOMMANDS. Heavy imports happen inside the handlers, so
``--help`` stays instant."""
from android_bench.cli import adb, arm, compare, local, report

SUBCOMMANDS = (adb, local, arm, compare, report)


def register(sub):
    bench = sub.add_parser("bench", help="latency on a phone (adb) or this CPU (local), instruction counts on emulated "
                                    "ARM cores (arm), the model comparison (compare) and its report (report)",
                           description="Measure TFLite model latency; results go to a JSON-lines file.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    for command in SUBCOMMANDS:
        command.add(bench_sub)
