"""``ghostnet bench compare``: the zoo converted to float32 and int8 (one process per conversion, cached by a
hash of everything that makes the file and its report), benchmarked round by round (A B C A B C ...) so
machine drift hits all alike, then reported. ``make run`` is this command on the local CPU.

Library code: errors are ValueError / ChildProcessError, progress goes to a ``log(message)`` callback."""
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from android_bench import report, results
from android_bench.local_runner import run_local
from ghostnet_tf.files import atomic_path, write_atomic

PRECISIONS = ("float32", "int8")
ARM_RUNS = 2  # counted inferences per emulated run after the first: the counts are exact, they only confirm
# The code that builds, converts and verifies the models: a change to any of it re-converts.
SOURCE_DIRS = [Path(__file__).resolve().parents[1] / name for name in ("ghostnet_tf", "convert")]
SOURCE_FILES = [Path(__file__).resolve().parent / "zoo.py"]


def _versions():
    from importlib.metadata import version

    from ghostnet_tf.runtime import get_runtime

    runtime = get_runtime()
    return {**{p: version(p) for p in ("tensorflow", "keras")}, "runtime": f"{runtime.name} {runtime.version}"}


def code_hash():
    """sha256 of the Python source that makes a converted file and its report."""
    digest = hashlib.sha256()
    files = sorted(SOURCE_FILES + [f for d in SOURCE_DIRS for f in Path(d).rglob("*.py")])
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _hash(payload):
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def uses_weights(entry, options):
    """The checkpoint of --weights is a GhostNet one: the other families keep their own initialisation."""
    return entry.family == "ghostnet" and options.get("weights") is not None


def source_key(entry, input_size, options):
    """Hash of what makes the Keras model: a change rebuilds it, and so every file converted from it."""
    return _hash({"model": [entry.name, entry.family, entry.width], "input_size": list(input_size),
                  "weights": options["weights_sha256"] if uses_weights(entry, options) else None,
                  "versions": _versions(), "code": code_hash()})


def conversion_arguments(precision, options):
    """The options of one conversion (``ghostnet convert`` arguments without paths)."""
    arguments = ["--quantize", precision, "--eval-count", str(options["eval_count"])]
    if precision == "int8":
        arguments += ["--calibration-steps", str(options["calibration_steps"])]
    return arguments


def conversion_key(entry, input_size, precision, options):
    """Hash of everything that changes a converted file or its report: the model source and every option."""
    return _hash({"source": source_key(entry, input_size, options),
                  "arguments": conversion_arguments(precision, options)})


def prepare_source(entry, input_size, cache_dir, options):
    """Save the Keras model once as ``.keras`` (the converters' input) with its params and MACs beside it."""
    from ghostnet_tf import profile

    stem = os.path.join(cache_dir, f"{entry.name}-{source_key(entry, input_size, options)}")
    meta_path = stem + ".json"
    if os.path.exists(meta_path) and os.path.exists(stem + ".keras"):
        with open(meta_path, encoding="utf-8") as handle:
            return json.load(handle)
    model = entry.build(input_size, options["weights"] if uses_weights(entry, options) else None)
    info = profile(model)
    with atomic_path(stem + ".keras") as tmp:
        model.save(tmp)
    meta = {"keras_model": stem + ".keras", "params": info["params"], "macs": info["macs"],
            "weights": options["weights_sha256"] if uses_weights(entry, options) else "random"}
    write_atomic(meta_path, json.dumps(meta).encode())
    return meta


def _report_path(tflite_path):
    return tflite_path[: -len(".tflite")] + ".report.json"


def _convert_one(keras_model, out_path, precision, options):
    """One conversion in its own process (TF's converter leaks memory per call), with its JSON report beside it."""
    command = [sys.executable, "-m", "convert", "convert", "--keras-model", keras_model, "-o", out_path,
               "--report", _report_path(out_path), "--no-progress", *conversion_arguments(precision, options)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ChildProcessError(f"converting {os.path.basename(keras_model)} to {precision} failed: {last}")


def convert_zoo(entries, input_size, cache_dir, options, jobs=2, log=lambda message: None):
    """{(name, precision): {"path", "report", "meta"}}; converted files already in the cache are reused."""
    os.makedirs(cache_dir, exist_ok=True)
    metas = {e.name: prepare_source(e, input_size, cache_dir, options) for e in entries}
    work, done = [], {}
    for entry in entries:
        for precision in PRECISIONS:
            key = conversion_key(entry, input_size, precision, options)
            path = os.path.join(cache_dir, f"{entry.name}-{precision}-{key}.tflite")
            done[(entry.name, precision)] = {"path": path, "meta": metas[entry.name]}
            if os.path.exists(path) and os.path.exists(_report_path(path)):
                continue
            work.append((entry, precision, path))
    cached = len(done) - len(work)
    log(f"compare: {len(done)} models to benchmark, {cached} already converted in {cache_dir}, "
         f"{len(work)} to convert ({jobs} at a time)")
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_convert_one, metas[e.name]["keras_model"], p, precision, options): (e, precision)
                   for e, precision, p in work}
        for count, future in enumerate(concurrent.futures.as_completed(futures), 1):
            entry, precision = futures[future]
            future.result()
            log(f"  [{count}/{len(work)}] {entry.name} {precision} converted "
                 f"({time.perf_counter() - start:.0f} s elapsed)")
    for item in done.values():
        with open(_report_path(item["path"]), encoding="utf-8") as handle:
            item["report"] = json.load(handle)
    return done


def _label(entry, precision, item, round_index):
    fidelity = item["report"].get("fidelity") or {}
    return {"name": entry.name, "precision": precision, "round": round_index, "params": item["meta"]["params"],
            "macs": item["meta"]["macs"], "top1": entry.top1, "weights": item["meta"]["weights"],
            "top1_agreement_pct": fidelity.get("top1_agreement_pct"),
            "converter": ", ".join(f"{name} {version}" for name, version in item["report"].get("versions", {}).items()
                                   if name != "runtime"),
            "conversion_s": item["report"]["seconds"]["total"]}


def benchmark_rounds(entries, converted, threads_list, options, results_path, measure, log=lambda message: None):
    """Round by round, every (model, precision, threads) once per round; ``measure(path, threads, pixels)``
    returns a record, which is labelled and appended at once (an interrupted run keeps whole records)."""
    configs = [(e, p, t) for e in entries for p in PRECISIONS for t in threads_list]
    for round_index in range(options["rounds"]):
        log(f"compare: round {round_index + 1}/{options['rounds']} over {len(configs)} configurations")
        for entry, precision, threads in configs:
            item = converted[(entry.name, precision)]
            record = measure(item["path"], threads, item["report"]["model"]["takes_pixels"])
            record["label"] = _label(entry, precision, item, round_index)
            results.append_record(results_path, record)


def count_on_arm(entries, converted, cores, results_path, use_xnnpack=True, jobs=2, log=lambda message: None):
    """Every (model, precision) on every emulated core, ``jobs`` emulators at a time. Counts are exact, so
    one round suffices; records are appended in table order whatever finishes first."""
    from android_bench.arm import emulator, install

    configs = [(e, p, core) for core in cores for e in entries for p in PRECISIONS]
    log(f"compare: counting instructions of {len(configs)} configurations on emulated {', '.join(cores)}")
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
            log(f"  [{count}/{len(configs)}] {entry.name} {precision} on {core}: "
                f"{record['instructions']['per_inference'] / 1e6:.2f} M instructions "
                f"({time.perf_counter() - start:.0f} s elapsed)")


def arm_available(wanted, log=lambda message: None):
    """Whether to add the ARM table: ``wanted`` True (required: ValueError if not set up), False (never) or
    None (when set up; says how to get it when not)."""
    if wanted is False:
        return False
    from android_bench.arm import install

    try:
        install.load()
        return True
    except install.SetupError as exc:
        if wanted:
            raise ValueError(f"--arm: {exc}") from None
        log("compare: no ARM instruction table: the emulator is not set up (`make arm` or "
            "`ghostnet bench arm --setup`, under a minute as root)")
        return False


def local_measure(options, use_xnnpack=True):
    return lambda path, threads, pixels: run_local(path, threads=threads, runs=options["runs"],
                                                   warmup=options["warmup"], use_xnnpack=use_xnnpack, pixels=pixels)


def adb_measure(session, options):
    """benchmark_model feeds its own random input, whatever the model takes."""
    delegate = "xnnpack" if session.use_xnnpack else "cpu"
    return lambda path, threads, pixels: session.measure(path, threads, delegate, options["runs"], options["warmup"])


def run_compare(entries, input_size, threads_list, options, out_dir, cache_dir, measure, jobs=2,
                baseline=None, log=lambda message: None, arm_cores=(), use_xnnpack=True, command=None):
    """Convert (or reuse), benchmark round by round into ``out_dir``/results.jsonl (``measure`` None: no
    latency), count instructions on the emulated ``arm_cores``, write the report there; returns the markdown."""
    results_path = os.path.join(out_dir, "results.jsonl")
    start = time.perf_counter()
    converted = convert_zoo(entries, input_size, cache_dir, options, jobs, log)
    converted_s = time.perf_counter() - start
    if measure is not None:
        benchmark_rounds(entries, converted, threads_list, options, results_path, measure, log)
    if arm_cores:
        count_on_arm(entries, converted, arm_cores, results_path, use_xnnpack, jobs, log)
    text = report.write_report(results_path, out_dir, baseline, command)
    log(f"compare: conversions {converted_s:.0f} s, total {time.perf_counter() - start:.0f} s; "
        f"results.jsonl, report.md, CSV and plots in {out_dir}")
    return text
