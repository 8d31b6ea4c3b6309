"""``ghostnet bench adb``: benchmark_model on an Android phone over adb (the only subcommand that needs one)."""
from android_bench.cli.common import (add_common_options, add_device_options, adb_session, check_output, emit,
                                      run_configs, stops_cleanly)
from ghostnet_tf.cliutil import check_distinct_paths


def add(bench_sub):
    p = bench_sub.add_parser("adb", help="benchmark on an Android phone with benchmark_model over adb",
                             description="Push the model and TFLite's benchmark_model to a phone, run one "
                                         "benchmark per threads x delegate, and record the results.")
    add_common_options(p)
    add_device_options(p)
    p.add_argument("--gpu", action="store_true", help="also run with the GPU delegate")
    p.add_argument("--nnapi", action="store_true", help="also run with the NNAPI delegate")
    p.add_argument("--op-profile", action="store_true", help="per-op profiling, summarized per op type")
    p.set_defaults(func=run)


@stops_cleanly
def run(args):
    from android_bench import device, modelfile

    # Everything checkable without a phone is checked first.
    modelfile.check_tflite(args.model)
    modelfile.elf_abi(args.benchmark_binary)
    check_distinct_paths(**{"--model": args.model, "--benchmark-binary": args.benchmark_binary,
                            "--json-lines": args.json_lines})
    check_output(args.json_lines, "--json-lines")
    session = adb_session(args)
    written = 0
    try:
        for run_config in run_configs(args, [None] + ["gpu"] * args.gpu + ["nnapi"] * args.nnapi):
            emit(session.measure(args.model, run_config), args.json_lines)
            written += 1
    except device.DeviceLost as exc:
        kept = (f"; the {written} record(s) already in {args.json_lines} stay valid"
                if args.json_lines and written else "")
        raise device.DeviceLost(f"{exc}{kept}") from None
