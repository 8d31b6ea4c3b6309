"""``ghostnet bench local``: LiteRT in this process, on this machine or an ARM Linux board."""
from android_bench.cli.common import add_common_options, check_output, emit, run_configs, stops_cleanly
from ghostnet_tf.cliutil import check_distinct_paths


def add(bench_sub):
    p = bench_sub.add_parser("local", help="benchmark with LiteRT in this process (this machine or an ARM board)",
                             description="Benchmark a .tflite model in-process with LiteRT, like benchmark_model.")
    add_common_options(p)
    p.set_defaults(func=run)


@stops_cleanly
def run(args):
    from android_bench.local_runner import LocalRunner

    check_distinct_paths(**{"--model": args.model, "--json-lines": args.json_lines})
    check_output(args.json_lines, "--json-lines")
    runner = LocalRunner()
    for run_config in run_configs(args):
        emit(runner.measure(args.model, run_config), args.json_lines)
