"""Stand-in for TFLite's benchmark_model: measures the model for real with ``run_local`` (LiteRT) and
prints the result in benchmark_model's output format. ``--use_gpu=true`` fails like a phone without GPU
support. The per-op table lists the model's real ops; its times are the mean split evenly (a stand-in)."""
import argparse
import os
import sys

from android_bench.local_runner import run_local


def flag(text):
    return text == "true"


parser = argparse.ArgumentParser()
parser.add_argument("--graph", required=True)
parser.add_argument("--num_threads", type=int, default=1)
parser.add_argument("--num_runs", type=int, default=50)
parser.add_argument("--warmup_runs", type=int, default=1)
parser.add_argument("--use_xnnpack", type=flag, default=True)
parser.add_argument("--use_gpu", type=flag, default=False)
parser.add_argument("--enable_op_profiling", type=flag, default=False)
args, _unknown = parser.parse_known_args()

print("INFO: STARTING!")
print(f"INFO: Graph: [{args.graph}]")
if args.use_gpu:
    print("ERROR: Can not open OpenCL library on this device - undefined symbol: clGetCommandBufferInfoKHR")
    print("ERROR: Failed to apply GPU delegate.")
    print("ERROR: Benchmarking failed.")
    sys.exit(1)
record = run_local(args.graph, threads=args.num_threads, runs=args.num_runs, warmup=args.warmup_runs,
                   use_xnnpack=args.use_xnnpack)
stats, warm = record["stats"], record["warmup"]


def count_line(s):
    return (f"INFO: count={s['count']} first={s['first_us']:.6g} curr={s['curr_us']:.6g} min={s['min_us']:.6g} "
            f"max={s['max_us']:.6g} avg={s['mean_us']:.6g} std={s['std_us']:.6g} p5={s['p5_us']:.6g} "
            f"median={s['median_us']:.6g} p95={s['p95_us']:.6g}")


if args.use_xnnpack:
    print("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
print(f"INFO: The input model file size (MB): {os.path.getsize(args.graph) / 1e6:.6g}")
print(f"INFO: Initialized session in {stats['init_us'] / 1000:.6g}ms.")
print(f"INFO: Running benchmark for at least {args.warmup_runs} iterations and at least 0 seconds "
      "but terminate if exceeding 150 seconds.")
print(count_line(warm))
print(f"INFO: Running benchmark for at least {args.num_runs} iterations and at least 0 seconds "
      "but terminate if exceeding 150 seconds.")
print(count_line(stats))
print(f"INFO: Inference timings in us: Init: {stats['init_us']:.6g}, First inference: {stats['first_inference_us']:.6g}, "
      f"Warmup (avg): {warm['mean_us']:.6g}, Inference (avg): {stats['mean_us']:.6g}")
peak = record["memory"]["peak_mb"]
print(f"INFO: Memory footprint delta from the start of the tool (MB): init={peak / 2:.4g} overall={peak:.4g}")
print(f"INFO: Overall peak memory footprint (MB) via periodic monitoring: {peak:.4g}")
if args.enable_op_profiling:
    from ghostnet_tf.runtime import make_interpreter

    ops = make_interpreter(model_path=args.graph, use_xnnpack=False)._get_ops_details()
    share = stats["mean_us"] / 1000 / len(ops)
    print("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:")
    print("INFO: ============================== Run Order ==============================")
    print("INFO: \t [node type]\t [first]\t [avg ms]\t [%]\t [cdf%]\t [mem KB]\t [times called]\t [Name]")
    for i, op in enumerate(ops):
        print(f"INFO: \t {op['op_name']}\t {share:.3f}\t {share:.3f}\t {100 / len(ops):.3f}%\t "
              f"{100 * (i + 1) / len(ops):.3f}%\t 0.000\t 1\t [op{i}]:{i}")
