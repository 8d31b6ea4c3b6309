"""``ghostnet bench report``: report.md, report.csv and plots from a results file."""
import os

from android_bench import zoo
from android_bench.arm import estimate
from android_bench.cli.common import check_folder, stops_cleanly, warn
from ghostnet_tf.cliutil import UsageError, check_input_file


def add(bench_sub):
    p = bench_sub.add_parser("report", help="markdown/CSV tables and PNG plots from a results file",
                             description="Report a JSON-lines results file: report.md, report.csv and plots.")
    p.add_argument("results", metavar="RESULTS.jsonl", help="results written by bench adb/local/compare")
    p.add_argument("--out", metavar="DIR", help="where to write (default: the results file's folder)")
    p.add_argument("--baseline", help=f"model for the ratio column (default {zoo.DEFAULT_BASELINE})")
    p.add_argument("--device", type=estimate.parse_devices, default=[], metavar="PHONE,PHONE",
                   help="add tables of milliseconds ESTIMATED on these published phones (e.g. pixel-3) from the "
                        "emulated instruction counts, with their leave-one-out error; not measurements")
    p.set_defaults(func=run)


@stops_cleanly
def run(args):
    from android_bench import report

    if os.path.isdir(args.results):
        raise UsageError(f"{args.results!r} is a folder; give the results file in it (e.g. results.jsonl)")
    check_input_file(args.results, "results file")
    out_dir = args.out or os.path.dirname(os.path.abspath(args.results))
    check_folder(out_dir, "--out")
    catalog = report.Catalog.of(zoo.ZOO.values(), zoo.DEFAULT_BASELINE)
    print(report.write_report(args.results, out_dir, catalog, args.baseline, getattr(args, "command_line", None),
                              estimate.estimator(args.device), warn))
    print(f"report: report.md, report.csv and plots in {out_dir}")
