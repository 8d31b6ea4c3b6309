"""``ghostnet bench compare``: the zoo converted to float32 and int8 (one process per conversion, cached by a
hash of model and options), benchmarked round by round (A B C A B C ...) so machine drift hits all alike,
then reported. ``make run`` is this command on the local CPU."""
import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time

from android_bench import modelfile, report, results, zoo
from android_bench.adb_runner import add_device_options, session_from_args
from android_bench.arm.commands import parse_cpus
from android_bench.cli import integer_at_least, parse_positive_list
from android_bench.local_runner import run_local
from ghostnet_tf.cli import parse_size, parse_width
from ghostnet_tf.files import atomic_path, write_atomic

PRECISIONS = ("float32", "int8")
DEFAULTS = {"runs": 50, "warmup": 5, "rounds": 3, "calibration_steps": 100, "eval_count": 16}
QUICK = {"runs": 10, "warmup": 2, "rounds": 1, "calibration_steps": 8, "eval_count": 4}
QUICK_MODELS = ("ghostnet_100", "mobilenet_v3_large_075")
ARM_RUNS = 2  # counted inferences per emulated run, after the first


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _versions():
    from importlib.metadata import version

    return {p: version(p) for p in ("ghostnet-tf", "tensorflow", "keras")}


def _hash(payload):
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def source_key(entry, input_size, options):
    """Hash of what makes the Keras model: a change rebuilds it, and so every file converted from it."""
    return _hash({"model": [entry.name, entry.family, entry.width], "input_size": list(input_size),
                  "weights": options.get("weights_sha256"), "versions": _versions()})


def prepare_source(entry, input_size, cache_dir, options):
    """Save the Keras model once as ``.keras`` (the converters' input) with its params and MACs beside it."""
    from ghostnet_tf import profile

    stem = os.path.join(cache_dir, f"{entry.name}-{source_key(entry, input_size, options)}")
    meta_path = stem + ".json"
    if os.path.exists(meta_path) and os.path.exists(stem + ".keras"):
        with open(meta_path, encoding="utf-8") as handle:
            return json.load(handle)
    model = entry.build(input_size, options.get("weights"))
    info = profile(model)
    with atomic_path(stem + ".keras") as tmp:
        model.save(tmp)
    meta = {"keras_model": stem + ".keras", "params": info["params"], "macs": info["macs"]}
    write_atomic(meta_path, json.dumps(meta).encode())
    return meta


def _report_path(tflite_path):
    return tflite_path[: -len(".tflite")] + ".report.json"


def _convert_one(keras_model, out_path, precision, options):
    """One conversion in its own process (TF's converter leaks memory per call), with its JSON report beside it."""
    command = [sys.executable, "-m", "convert", "convert", "--keras-model", keras_model, "-o", out_path,
               "--quantize", precision, "--report", _report_path(out_path), "--no-progress",
               "--eval-count", str(options["eval_count"])]
    if precision == "int8":
        command += ["--calibration-steps", str(options["calibration_steps"])]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ChildProcessError(f"converting {os.path.basename(keras_model)} to {precision} failed:\n{tail}")


def convert_zoo(entries, input_size, cache_dir, options, jobs=2):
    """{(name, precision): {"path", "report", "meta"}}; converted files already in the cache are reused."""
    os.makedirs(cache_dir, exist_ok=True)
    metas = {e.name: prepare_source(e, input_size, cache_dir, options) for e in entries}
    work, done = [], {}
    for entry in entries:
        for precision in PRECISIONS:
            key = _hash({"source": source_key(entry, input_size, options), "precision": precision,
                         "calibration_steps": options["calibration_steps"]})
            path = os.path.join(cache_dir, f"{entry.name}-{precision}-{key}.tflite")
            done[(entry.name, precision)] = {"path": path, "meta": metas[entry.name]}
            if os.path.exists(path) and os.path.exists(_report_path(path)):
                continue
            work.append((entry, precision, path))
    cached = len(done) - len(work)
    _log(f"compare: {len(done)} models to benchmark, {cached} already converted in {cache_dir}, "
         f"{len(work)} to convert ({jobs} at a time)")
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_convert_one, metas[e.name]["keras_model"], p, precision, options): (e, precision)
                   for e, precision, p in work}
        for count, future in enumerate(concurrent.futures.as_completed(futures), 1):
            entry, precision = futures[future]
            future.result()
            _log(f"  [{count}/{len(work)}] {entry.name} {precision} converted "
                 f"({time.perf_counter() - start:.0f} s elapsed)")
    for item in done.values():
        with open(_report_path(item["path"]), encoding="utf-8") as handle:
            item["report"] = json.load(handle)
    return done


def _label(entry, precision, item, round_index):
    fidelity = item["report"].get("fidelity") or {}
    return {"name": entry.name, "precision": precision, "round": round_index, "params": item["meta"]["params"],
            "macs": item["meta"]["macs"], "top1": entry.top1,
            "top1_agreement_pct": fidelity.get("top1_agreement_pct"),
            "conversion_s": item["report"]["seconds"]["total"]}


def benchmark_rounds(entries, converted, threads_list, options, results_path, measure):
    """Round by round, every (model, precision, threads) once per round; ``measure(path, threads)`` returns
    a record, which is labelled and appended at once (an interrupted run keeps whole records)."""
    configs = [(e, p, t) for e in entries for p in PRECISIONS for t in threads_list]
    for round_index in range(options["rounds"]):
        _log(f"compare: round {round_index + 1}/{options['rounds']} over {len(configs)} configurations")
        for entry, precision, threads in configs:
            item = converted[(entry.name, precision)]
            record = measure(item["path"], threads)
            record["label"] = _label(entry, precision, item, round_index)
            results.append_record(results_path, record)


def count_on_arm(entries, converted, cores, results_path, use_xnnpack=True, jobs=2):
    """Every (model, precision) on every emulated core, ``jobs`` emulators at a time. Counts are exact, so
    one round suffices; records are appended in table order whatever finishes first."""
    from android_bench.arm import emulator, install

    configs = [(e, p, core) for core in cores for e in entries for p in PRECISIONS]
    _log(f"compare: counting instructions of {len(configs)} configurations on emulated {', '.join(cores)}")
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(emulator.emulate, converted[(e.name, p)]["path"], core, ARM_RUNS, use_xnnpack)
                   for e, p, core in configs]
        for count, ((entry, precision, core), future) in enumerate(zip(configs, futures), 1):
            try:
                record = future.result()
            except install.ArmError as exc:
                raise ValueError(f"{entry.name} {precision} on {core}: {exc}") from None
            record["label"] = _label(entry, precision, converted[(entry.name, precision)], 0)
            results.append_record(results_path, record)
            _log(f"  [{count}/{len(configs)}] {entry.name} {precision} on {core}: "
                 f"{record['instructions']['per_inference'] / 1e6:.2f} M instructions "
                 f"({time.perf_counter() - start:.0f} s elapsed)")


def arm_available(wanted):
    """Whether to add the ARM table: ``wanted`` True (required), False (never) or None (when set up)."""
    if wanted is False:
        return False
    from android_bench.arm import install

    try:
        install.load()
        return True
    except install.SetupError as exc:
        if wanted:
            raise ValueError(f"--arm: {exc}") from None
        _log("compare: no ARM instruction table: the emulator is not set up (`make arm` or "
             "`ghostnet bench arm --setup`, under a minute as root)")
        return False


def local_measure(options, use_xnnpack=True):
    return lambda path, threads: run_local(path, threads=threads, runs=options["runs"], warmup=options["warmup"],
                                           use_xnnpack=use_xnnpack)


def adb_measure(args, options):
    """Connect to the phone first, so a missing device fails before the conversions."""
    if not args.benchmark_binary:
        raise ValueError("--target adb needs --benchmark-binary PATH (benchmark_model built for the phone)")
    session = session_from_args(args)
    delegate = "xnnpack" if args.xnnpack else "cpu"
    return lambda path, threads: session.measure(path, threads, delegate, options["runs"], options["warmup"])


def register(bench_sub):
    p = bench_sub.add_parser("compare", help="convert the model zoo (GhostNet vs MobileNetV2/V3) and benchmark it",
                             description="Convert GhostNet 0.5/1.0/1.3x and MobileNetV2/V3 to float32 and int8, "
                                         "benchmark them round by round and write a report.")
    p.add_argument("--target", choices=("local", "adb", "arm"), default="local",
                   help="where to measure: this CPU's latency (default), a phone's, or instructions on emulated "
                        "ARM cores (arm)")
    p.add_argument("--cpu", type=parse_cpus, default=["cortex-a76"],
                   help="emulated ARM cores for --target arm and the ARM table (default cortex-a76)")
    p.add_argument("--arm", action=argparse.BooleanOptionalAction, default=None,
                   help="with --target local: also count instructions on the emulated --cpu cores (default: "
                        "when `ghostnet bench arm --setup` has been run)")
    p.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], metavar="A,B",
                   help=f"subset of the zoo: {', '.join(zoo.ZOO)}")
    p.add_argument("--width", type=lambda s: [parse_width(w) for w in s.split(",")], metavar="W,W",
                   help="GhostNet widths (default 0.5,1.0,1.3)")
    p.add_argument("--input-size", type=parse_size, default=(224, 224), help="S or HxW (default 224)")
    p.add_argument("--threads", type=parse_positive_list, default=[], help="thread counts besides 1, e.g. 2,4")
    p.add_argument("--runs", type=integer_at_least(1), help=f"timed runs per round (default {DEFAULTS['runs']})")
    p.add_argument("--warmup", type=integer_at_least(0), help=f"warm-up runs per round (default {DEFAULTS['warmup']})")
    p.add_argument("--rounds", type=integer_at_least(1), help=f"rounds over all models (default {DEFAULTS['rounds']})")
    p.add_argument("--calibration-steps", type=integer_at_least(1),
                   help=f"int8 calibration images (default {DEFAULTS['calibration_steps']})")
    p.add_argument("--jobs", type=integer_at_least(1), default=2, help="conversions at a time (default 2)")
    p.add_argument("--weights", metavar="PATH", help="a GhostNet checkpoint for the GhostNet entries (with --width set to its width; default random)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {', '.join(QUICK_MODELS)} only, 1 round of {QUICK['runs']} runs")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<timestamp>)")
    p.add_argument("--cache-dir", metavar="DIR", default=os.path.join("runs", "cache"),
                   help="converted models are kept here and reused (default runs/cache)")
    p.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                   help="XNNPACK CPU delegate (default on)")
    adb_options = p.add_argument_group("--target adb", "the phone, as for `ghostnet bench adb`")
    add_device_options(adb_options, binary_required=False)
    p.set_defaults(func=run_compare)


def run_compare(args):
    defaults = QUICK if args.quick else DEFAULTS
    options = {k: v if getattr(args, k, None) is None else getattr(args, k) for k, v in defaults.items()}
    if args.weights:
        if not os.path.isfile(args.weights):
            raise ValueError(f"--weights: no such file: {args.weights}")
        options["weights"], options["weights_sha256"] = args.weights, modelfile.sha256_file(args.weights)
    entries = zoo.select(args.models or (QUICK_MODELS if args.quick else None), args.width)
    threads_list = sorted({1, *args.threads})
    out_dir = args.out or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    results_path = os.path.join(out_dir, "results.jsonl")
    measure = adb_measure(args, options) if args.target == "adb" else local_measure(options, args.xnnpack)
    with_arm = arm_available(True) if args.target == "arm" else args.target == "local" and arm_available(args.arm)

    start = time.perf_counter()
    converted = convert_zoo(entries, args.input_size, args.cache_dir, options, args.jobs)
    converted_s = time.perf_counter() - start
    if args.target != "arm":
        benchmark_rounds(entries, converted, threads_list, options, results_path, measure)
    if with_arm:
        count_on_arm(entries, converted, args.cpu, results_path, args.xnnpack, args.jobs)
    text = report.write_report(results_path, out_dir)
    print(text)
    print(f"compare: conversions {converted_s:.0f} s, total {time.perf_counter() - start:.0f} s; "
          f"results.jsonl, report.md, CSV and plots in {out_dir}")
