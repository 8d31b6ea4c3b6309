"""``ghostnet bench compare``: the zoo converted to float32 and int8 (``convert.api.convert`` in a fresh worker
process per conversion, cached by a hash of the model source and the ``ConversionSpec``), benchmarked round by round (A B C A B C ...) so
machine drift hits all alike, then reported. ``make run`` is this command on the local CPU.

Library code: errors are ValueError / ChildProcessError, progress goes to a ``log(message)`` callback."""
import concurrent.futures
import contextlib
import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path

from android_bench import report, results
from android_bench.arm import estimate
from android_bench.runner import RunConfig
from android_bench.zoo import DEFAULT_BASELINE, ZOO
from ghostnet_tf.files import atomic_path, sha256_file, write_atomic

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


def conversion_spec(precision, options):
    """The ``ConversionSpec`` of one zoo conversion: built-in calibration and held-out images."""
    from convert.spec import ConversionSpec

    steps = {"calibration_steps": options["calibration_steps"]} if precision == "int8" else {}
    return ConversionSpec(quantize=precision, eval_count=options["eval_count"], **steps)


def conversion_key(entry, input_size, precision, options):
    """Hash of everything that changes a converted file or its report: the model source and the spec."""
    return _hash({"source": source_key(entry, input_size, options),
                  "spec": conversion_spec(precision, options).key()})


def _load_json(path):
    """The object in a JSON cache file, or None if it is missing or damaged."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _seal(*paths):
    """Record each file's sha256 beside it (``FILE.sha256``), written after the file: a cache entry is whole
    only when every file matches its seal."""
    for path in paths:
        write_atomic(path + ".sha256", sha256_file(path).encode())


def _sealed(*paths):
    """Whether every file exists and matches the sha256 recorded when it was made."""
    try:
        for path in paths:
            with open(path + ".sha256", encoding="utf-8") as handle:
                if handle.read().strip() != sha256_file(path):
                    return False
    except OSError:
        return False
    return True


def _evict(paths, what, log):
    """Remove a damaged (or unsealed) cache entry, saying so, so that it is made again instead of served again."""
    if not any(os.path.exists(path) for path in paths):
        return
    for path in paths:
        for name in (path, path + ".sha256"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
    log(f"compare: the cached {what} ({os.path.basename(paths[0])}) is damaged or incomplete (its files do not "
        "match their recorded sha256, or do not parse); removed it, making it again")


def prepare_source(entry, input_size, cache_dir, options, log=lambda message: None):
    """Save the Keras model once as ``.keras`` (the converters' input) with its params and MACs beside it."""
    from ghostnet_tf import profile

    stem = os.path.join(cache_dir, f"{entry.name}-{source_key(entry, input_size, options)}")
    meta_path, keras_path = stem + ".json", stem + ".keras"
    meta = _load_json(meta_path) if _sealed(meta_path, keras_path) else None
    if meta is not None:
        return meta
    _evict([keras_path, meta_path], f"Keras model of {entry.name}", log)
    model = entry.build(input_size, options["weights"] if uses_weights(entry, options) else None)
    info = profile(model)
    with atomic_path(keras_path) as tmp:
        model.save(tmp)
    meta = {"keras_model": keras_path, "params": info["params"], "macs": info["macs"],
            "weights": options["weights_sha256"] if uses_weights(entry, options) else "random"}
    write_atomic(meta_path, json.dumps(meta).encode())
    _seal(keras_path, meta_path)
    return meta


def _report_path(tflite_path):
    return tflite_path[: -len(".tflite")] + ".report.json"


def _quiet_worker():
    from ghostnet_tf.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()


def _convert_in_worker(keras_model, out_path, spec):
    """One conversion, run in a worker process of its own (TF's converter leaks memory per call): the
    ``ConversionReport`` comes back, and is written beside the file for the cache."""
    from convert.api import convert
    from convert.source import load_keras_model

    try:
        report = convert(load_keras_model(keras_model=keras_model), out_path, spec, show_progress=False)
    except ValueError as exc:
        raise ChildProcessError(f"converting {os.path.basename(keras_model)} to {spec.quantize} failed: "
                                f"{exc}") from None
    report.write(_report_path(out_path))
    return report


def _conversions(work, jobs):
    """Yield ((entry, precision), report) as the worker processes finish, one fresh process per conversion."""
    context = multiprocessing.get_context("spawn")  # TensorFlow's threads do not survive a fork
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_quiet_worker,
                                                max_tasks_per_child=1) as pool:
        futures = {pool.submit(_convert_in_worker, keras_model, path, spec): (entry, spec.quantize)
                   for entry, spec, keras_model, path in work}
        try:
            for future in concurrent.futures.as_completed(futures):
                try:
                    yield futures[future], future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    entry, precision = futures[future]
                    raise ChildProcessError(f"converting {entry.name} to {precision} failed: its worker process "
                                            "stopped (out of memory, or a script calling this lacks the `if __name__ "
                                            "== \"__main__\":` guard that multiprocessing needs)") from None
        except BaseException:  # stopped (or failed): the other conversions would only be waited for
            for future in futures:
                future.cancel()
            for process in list((pool._processes or {}).values()):  # no public way to stop them before 3.14
                process.terminate()
            raise


def convert_zoo(entries, input_size, cache_dir, options, jobs=2, log=lambda message: None):
    """{(name, precision): {"path", "report", "meta"}}; converted files already in the cache are reused when
    they match their recorded sha256 (a damaged entry is removed, with a note, and converted again)."""
    os.makedirs(cache_dir, exist_ok=True)
    metas = {e.name: prepare_source(e, input_size, cache_dir, options, log) for e in entries}
    work, done = [], {}
    for entry in entries:
        for precision in PRECISIONS:
            key = conversion_key(entry, input_size, precision, options)
            path = os.path.join(cache_dir, f"{entry.name}-{precision}-{key}.tflite")
            item = done[(entry.name, precision)] = {"path": path, "meta": metas[entry.name]}
            if _sealed(path, _report_path(path)):
                item["report"] = _load_json(_report_path(path))
            if item.get("report") is None:
                _evict([path, _report_path(path)], f"{precision} conversion of {entry.name}", log)
                work.append((entry, conversion_spec(precision, options), metas[entry.name]["keras_model"], path))
    cached = len(done) - len(work)
    log(f"compare: {len(done)} models to benchmark, {cached} already converted in {cache_dir}, "
         f"{len(work)} to convert ({jobs} at a time)")
    start = time.perf_counter()
    for count, ((entry, precision), conversion) in enumerate(_conversions(work, jobs), 1):
        item = done[(entry.name, precision)]
        item["report"] = conversion.to_json()
        _seal(item["path"], _report_path(item["path"]))
        log(f"  [{count}/{len(work)}] {entry.name} {precision} converted "
            f"({time.perf_counter() - start:.0f} s elapsed)")
    return done


def _label(entry, precision, item, round_index):
    fidelity = item["report"].get("fidelity") or {}
    return {"name": entry.name, "precision": precision, "round": round_index, "params": item["meta"]["params"],
            "macs": item["meta"]["macs"], "top1": entry.top1, "weights": item["meta"]["weights"],
            "top1_agreement_pct": fidelity.get("top1_agreement_pct"),
            "converter": ", ".join(f"{name} {version}" for name, version in item["report"].get("versions", {}).items()
                                   if name != "runtime"),
            "conversion_s": item["report"]["seconds"]["total"]}


def benchmark_rounds(entries, converted, runner, run_configs, rounds, results_path, jobs=1,
                     log=lambda message: None):
    """Plan every (model, precision, configuration) once per round (A B C A B C ...: drift hits all alike),
    then measure the plan with ``runner``, ``jobs`` at a time (more than one only where neighbours cannot
    disturb the figure: instruction counts). Records are labelled and appended in plan order, each at once,
    so an interrupted run keeps whole records."""
    plan = [(round_index, entry, precision, run_config) for round_index in range(rounds)
            for entry in entries for precision in PRECISIONS for run_config in run_configs]
    per_round = len(plan) // rounds

    def measure(entry, precision, run_config):
        try:
            return runner.measure(converted[(entry.name, precision)]["path"], run_config)
        except RuntimeError as exc:  # a runner's own failure (the emulator's ArmError): one line naming the file
            raise ValueError(f"{entry.name} {precision}: {exc}") from None

    start = time.perf_counter()
    records = _in_order(measure, [task[1:] for task in plan], jobs, getattr(runner, "stop", None))
    for index, (round_index, entry, precision, _) in enumerate(plan):
        if index % per_round == 0:
            log(f"compare: round {round_index + 1}/{rounds} over {per_round} configurations")
        record = next(records)
        record["label"] = _label(entry, precision, converted[(entry.name, precision)], round_index)
        results.append_record(results_path, record)
        log(f"  [{index + 1}/{len(plan)}] {entry.name} {precision} {_figure(record)} "
            f"({time.perf_counter() - start:.0f} s elapsed)")


def _in_order(function, tasks, jobs, stop=None):
    """``function(*task)`` of each task, yielded in order; ``jobs`` > 1 computes ahead in threads (when the
    caller stops early, the ones not started yet are cancelled and ``stop()`` ends the running ones)."""
    if jobs == 1:
        yield from (function(*task) for task in tasks)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(function, *task) for task in tasks]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
            if stop is not None:
                stop()


def _figure(record):
    """A record's figure for the progress line: instructions on an emulated core, else the median latency."""
    if record["mode"] == "arm-emulated":
        return f"on {record['device']['cpu']}: {record['instructions']['per_inference'] / 1e6:.2f} M instructions"
    stats = record["stats"]
    median_us = stats["median_us"] if stats.get("median_us") is not None else stats["mean_us"]
    return f"{record['threads']} thread(s): median {median_us / 1000:.2f} ms"


def arm_available(wanted, log=lambda message: None):
    """Whether to add the ARM table: ``wanted`` True (required: ValueError if not set up), False (never) or
    None (when set up; says how to get it when not)."""
    if wanted is False:
        return False
    from android_bench.arm.emulator import Emulator, SetupError

    try:
        Emulator.load()
        return True
    except SetupError as exc:
        if wanted:
            raise ValueError(f"--arm: {exc}") from None
        log("compare: no ARM instruction table: the emulator is not set up (`make arm` or "
            "`ghostnet bench arm --setup`, under a minute as root)")
        return False


def check_run_folder(out_dir):
    """A run folder holds one run: refuse one that already has results (its report would mix the runs' models
    and pool their rounds)."""
    results_path = os.path.join(out_dir, "results.jsonl")
    if os.path.exists(results_path):
        raise ValueError(f"--out: {out_dir} already holds the results of another run ({results_path}); give a new "
                         "folder (or remove that one) so that each report shows one run")


def run_compare(entries, input_size, threads_list, options, out_dir, cache_dir, runner, jobs=2,
                baseline=None, log=lambda message: None, arm_cores=(), use_xnnpack=True, command=None, devices=()):
    """Convert (or reuse), then measure into ``out_dir``/results.jsonl: with ``runner`` (None: no latency) at
    each of ``threads_list`` round by round, and on each emulated core of ``arm_cores`` once (counts are
    exact), ``jobs`` at a time; write the report there (with ms estimated on the phones ``devices``); returns
    the markdown. ``out_dir`` must not hold another run's results; a run that fails before its first record
    leaves no folder behind."""
    check_run_folder(out_dir)
    created = not os.path.isdir(out_dir)
    try:
        return _run_compare(entries, input_size, threads_list, options, out_dir, cache_dir, runner, jobs, baseline,
                            log, arm_cores, use_xnnpack, command, devices)
    except BaseException:
        if created and os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise


def _run_compare(entries, input_size, threads_list, options, out_dir, cache_dir, runner, jobs, baseline, log,
                 arm_cores, use_xnnpack, command, devices):
    results_path = os.path.join(out_dir, "results.jsonl")
    start = time.perf_counter()
    converted = convert_zoo(entries, input_size, cache_dir, options, jobs, log)
    converted_s = time.perf_counter() - start
    os.makedirs(out_dir, exist_ok=True)
    if runner is not None:
        latency = [RunConfig(threads=threads, runs=options["runs"], warmup=options["warmup"], use_xnnpack=use_xnnpack)
                   for threads in threads_list]
        benchmark_rounds(entries, converted, runner, latency, options["rounds"], results_path, log=log)
    if arm_cores:
        from android_bench.arm.emulator import Emulator

        emulator, counted = Emulator.load(log=log), [RunConfig(runs=ARM_RUNS, warmup=0, use_xnnpack=use_xnnpack)]
        for core in arm_cores:
            benchmark_rounds(entries, converted, emulator.on(core), counted, 1, results_path, jobs, log)
    text = report.write_report(results_path, out_dir, report.Catalog.of(ZOO.values(), DEFAULT_BASELINE), baseline,
                               command, estimate.estimator(devices))
    log(f"compare: conversions {converted_s:.0f} s, total {time.perf_counter() - start:.0f} s; "
        f"results.jsonl, report.md, CSV and plots in {out_dir}")
    return text
