"""THE benchmark result format: one JSON record per configuration, appended to a JSON-lines file.

Every runner (``android_bench/runner.py``: ``bench local``, ``bench adb``, ``bench arm``) writes it and
``compare``/``report`` read it, so this module is the single definition. API: ``make_record(...)`` builds a record, ``validate_record(record)`` checks one,
``append_record(path, record)`` adds it durably (whole or not at all), ``read_records(path, warn=None)`` loads a
file (strictly, or skipping the bad lines it names), ``summarize(samples)``
turns raw latencies into the statistics block.

A record (``schema == "ghostnet-bench/1"``)::

    schema      "ghostnet-bench/1"
    date        ISO 8601 UTC time of the measurement
    mode        "adb" (benchmark_model on a phone), "local" (LiteRT in this process) or "arm-emulated"
                (the aarch64 LiteRT under qemu-user: instruction counts, no latency)
    model       {path, sha256, size_bytes, input_shape, input_dtype, input_quantization: {scale, zero_point}|null}
    runtime     {name, version, ...}  e.g. {"name": "ai-edge-litert", "version": "2.3.0"}
                                      or {"name": "benchmark_model", "version": null, "binary_sha256": ...}
    delegate    "xnnpack" | "cpu" (builtin kernels) | "gpu" | "nnapi"
    threads     int
    cpu_mask    hex string of the cores the run was pinned to (e.g. "f0"), null when not pinned
    device      facts: adb {serial, manufacturer, model, soc, board, android_version, sdk, abi, abilist,
                cores, max_freq_khz, big_cores}; local {hostname, system, release, machine, cpu_model, cpu_count}
    stats       latency modes only (null for arm-emulated), measured runs, microseconds: {count, first_us, curr_us, min_us, max_us, mean_us, std_us,
                p5_us, median_us, p95_us, init_us, first_inference_us}; p5/median/p95 are null when an old
                benchmark_model did not print them (fall back to mean_us)
    warmup      warm-up runs, same keys as stats without init/first_inference, or null
    memory      {peak_mb, source, ...} adb adds init_delta_mb/overall_delta_mb
    op_profile  [{node_type, nodes, avg_ms, percent, times_called}] (adb --op-profile) or null
    thermal     adb: {status_before, status_after_wait, waited_s, cool} ; null for local
    raw_output  benchmark_model's full output (adb, for audit); null for local
    instructions  arm-emulated only: guest instructions {count (inferences counted), per_inference (median),
                min, max, first_inference, marker_overhead (subtracted from each), dot_product_per_inference
                (SDOT/UDOT), i8mm_per_inference (SMMLA/UMMLA/USMMLA)}; device then holds {cpu, midr, features,
                emulator, emulator_version, ...}
    host_agreement  arm-emulated only: the same input through this machine's runtime {host_runtime,
                host_machine, max_abs_diff (in the output's own units), bit_exact, output_dtype}
    breakdown   optional, arm-emulated with --per-block: {ops: [{index, op, block, resolution, instructions,
                dot_product}], by_block, by_op, by_resolution: {name: instructions}}
    estimates   optional, arm-emulated with --device: milliseconds ESTIMATED (never measured) from the count on
                published phones (android_bench/arm/estimate.py), kept apart from the exact counts:
                [{device, device_name, precision, ms, error_pct, error_kind, scale_ms_per_m_instructions,
                emulated_core, basis, note}]
    label       optional, set by ``bench compare``: {name, precision, round, params, macs, top1,
                top1_agreement_pct, conversion_s}; the report groups rounds by name and precision
"""
import datetime
import errno
import json
import math
import os

import numpy as np

from android_bench.parsing import STAT_KEYS
from ghostnet_tf.cliutil import first_line

SCHEMA = "ghostnet-bench/1"
MODES = ("adb", "local", "arm-emulated")
INSTRUCTION_KEYS = ("per_inference", "min", "max", "first_inference", "marker_overhead",
                    "dot_product_per_inference", "i8mm_per_inference")
DELEGATES = ("xnnpack", "cpu", "gpu", "nnapi")
REQUIRED = ("schema", "date", "mode", "model", "runtime", "delegate", "threads", "cpu_mask", "device",
            "stats", "warmup", "memory", "op_profile", "thermal", "raw_output")


def summarize(samples_us):
    """The statistics block of ``benchmark_model`` (same keys) from raw latencies in microseconds.

    Percentiles use nearest rank on the sorted samples, std is the population std, as benchmark_model does.
    """
    samples = np.asarray(samples_us, dtype=np.float64)
    if samples.size == 0:
        raise ValueError("no timing samples to summarize")
    ranked = np.sort(samples)

    def rank(p):
        return float(ranked[min(len(ranked) - 1, max(0, math.ceil(p / 100.0 * len(ranked)) - 1))])

    return {"count": int(samples.size), "first_us": float(samples[0]), "curr_us": float(samples[-1]),
            "min_us": float(ranked[0]), "max_us": float(ranked[-1]), "mean_us": float(samples.mean()),
            "std_us": float(samples.std()), "p5_us": rank(5), "median_us": rank(50), "p95_us": rank(95)}


def make_record(*, mode, model, runtime, delegate, threads, cpu_mask, device, timings,
                thermal=None, raw_output=None, date=None):
    """One validated record. ``timings`` has the shape of ``parse_benchmark_output``'s result
    (init_us, first_inference_us, warmup, measured, memory, op_profile); local runs build the same shape."""
    stats = dict(timings["measured"])
    stats["init_us"] = timings.get("init_us")
    stats["first_inference_us"] = timings.get("first_inference_us")
    record = {
        "schema": SCHEMA,
        "date": date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode, "model": dict(model), "runtime": dict(runtime), "delegate": delegate,
        "threads": int(threads), "cpu_mask": cpu_mask, "device": dict(device),
        "stats": stats, "warmup": timings.get("warmup"), "memory": dict(timings.get("memory") or {}),
        "op_profile": timings.get("op_profile"), "thermal": thermal, "raw_output": raw_output,
    }
    validate_record(record)
    return record


def make_arm_record(*, model, runtime, delegate, device, instructions, host_agreement, breakdown=None, date=None):
    """One validated ``arm-emulated`` record: instruction counts on an emulated core, no timings."""
    record = {
        "schema": SCHEMA,
        "date": date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "arm-emulated", "model": dict(model), "runtime": dict(runtime), "delegate": delegate, "threads": 1,
        "cpu_mask": None, "device": dict(device), "stats": None, "warmup": None, "memory": {}, "op_profile": None,
        "thermal": None, "raw_output": None, "instructions": dict(instructions), "host_agreement": dict(host_agreement),
    }
    if breakdown is not None:
        record["breakdown"] = breakdown
    validate_record(record)
    return record


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# What the readers (report.py, estimate.py, the printers) use of a record, by kind: one schema for the
# validator and the reader, so a record that passes is a record they can read.
KINDS = {"str": (lambda v: isinstance(v, str), "a string"), "int": (_is_int, "an integer"),
         "number": (_is_number, "a finite number"), "bool": (lambda v: isinstance(v, bool), "true or false"),
         "object": (lambda v: isinstance(v, dict), "an object"), "list": (lambda v: isinstance(v, list), "a list"),
         "ints": (lambda v: isinstance(v, list) and all(map(_is_int, v)), "a list of integers")}
FIELDS = {  # where -> {key: (kind, may be null)}
    "": {"date": ("str", False), "threads": ("int", False), "cpu_mask": ("str", True), "model": ("object", False),
         "runtime": ("object", False), "device": ("object", False), "memory": ("object", False),
         "warmup": ("object", True), "op_profile": ("list", True), "thermal": ("object", True),
         "raw_output": ("str", True)},
    "model": {"path": ("str", False), "sha256": ("str", False), "size_bytes": ("int", False),
              "input_shape": ("ints", False), "input_dtype": ("str", False), "input_quantization": ("object", True)},
    "runtime": {"name": ("str", False), "version": ("str", True)},
    "label": {"name": ("str", False), "precision": ("str", False), "round": ("int", True), "params": ("int", True),
              "macs": ("int", True), "top1": ("number", True), "top1_agreement_pct": ("number", True),
              "conversion_s": ("number", True), "weights": ("str", True), "converter": ("str", True)},
    "warmup": {"count": ("int", True)},
    "memory": {"peak_mb": ("number", True)},
}
MODEL_REQUIRED = ("path", "sha256", "size_bytes", "input_shape", "input_dtype")
ARM_DEVICE = {"cpu": ("str", False), "emulator": ("str", False), "emulator_version": ("str", False)}
AGREEMENT = {"bit_exact": ("bool", False), "max_abs_diff": ("number", False)}


def _check_fields(block, fields, where, required=()):
    """ValueError naming ``where.key`` for the first field of ``block`` that is not of its kind (absent optional
    fields pass; ``required`` ones must be there)."""
    for key, (kind, nullable) in fields.items():
        if key not in block:
            if key in required:
                raise ValueError(f"benchmark record's {where[:-1]} lacks {key}")
            continue
        value = block[key]
        test, wanted = KINDS[kind]
        if not (test(value) or (nullable and value is None)):
            raise ValueError(f"benchmark record's {where}{key} is {value!r}, expected {wanted}"
                             + (" or null" if nullable else ""))


def validate_record(record):
    """Raise ValueError naming the first problem if ``record`` does not follow the schema."""
    if not isinstance(record, dict):
        raise ValueError("a benchmark record must be a JSON object")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise ValueError(f"benchmark record lacks {', '.join(missing)}")
    if record["schema"] != SCHEMA:
        raise ValueError(f"benchmark record has schema {record['schema']!r}, expected {SCHEMA!r}")
    if record["mode"] not in MODES:
        raise ValueError(f"benchmark record has mode {record['mode']!r}, expected one of {MODES}")
    if record["delegate"] not in DELEGATES:
        raise ValueError(f"benchmark record has delegate {record['delegate']!r}, expected one of {DELEGATES}")
    if not _is_int(record["threads"]) or record["threads"] < 1:
        raise ValueError(f"benchmark record has threads {record['threads']!r}, expected an integer >= 1")
    if record["mode"] == "arm-emulated":
        _validate_instructions(record)
    else:
        _validate_stats(record["stats"])
    _check_fields(record, FIELDS[""], "")
    _check_fields(record["model"], FIELDS["model"], "model.", required=MODEL_REQUIRED)
    _check_fields(record["runtime"], FIELDS["runtime"], "runtime.", required=("name",))
    _check_fields(record["memory"], FIELDS["memory"], "memory.")
    if record["warmup"] is not None:
        _check_fields(record["warmup"], FIELDS["warmup"], "warmup.")
    label = record.get("label")
    if label is not None:
        if not isinstance(label, dict):
            raise ValueError("benchmark record's label must be an object with name and precision")
        _check_fields(label, FIELDS["label"], "label.", required=("name", "precision"))


def _validate_instructions(record):
    counts = record.get("instructions")
    if record["stats"] is not None:
        raise ValueError("an arm-emulated benchmark record has no latency stats (stats must be null)")
    if not isinstance(counts, dict) or not _is_int(counts.get("count")) or counts["count"] < 1:
        raise ValueError("an arm-emulated benchmark record needs instructions with count >= 1")
    for key in INSTRUCTION_KEYS:
        if not _is_int(counts.get(key)):
            raise ValueError(f"benchmark record's instructions.{key} is {counts.get(key)!r}, not an integer")
    _check_fields(record, {"device": FIELDS[""]["device"]}, "")
    _check_fields(record["device"], ARM_DEVICE, "device.", required=tuple(ARM_DEVICE))
    agreement = record.get("host_agreement")
    if not isinstance(agreement, dict):
        raise ValueError("an arm-emulated benchmark record needs host_agreement with bit_exact")
    _check_fields(agreement, AGREEMENT, "host_agreement.", required=tuple(AGREEMENT))
    estimates = record.get("estimates")
    if estimates is not None and not (isinstance(estimates, list) and all(
            isinstance(e, dict) and isinstance(e.get("device"), str) and _is_number(e.get("ms"))
            and _is_number(e.get("error_pct")) and isinstance(e.get("basis"), str) for e in estimates)):
        raise ValueError("benchmark record's estimates must be a list of {device, ms, error_pct, basis, ...}")
    split = record.get("breakdown")
    if split is not None and not (isinstance(split, dict) and isinstance(split.get("ops"), list)
                                  and all(isinstance(split.get(k), dict) for k in ("by_block", "by_op", "by_resolution"))):
        raise ValueError("benchmark record's breakdown needs ops, by_block, by_op and by_resolution")


def _validate_stats(stats):
    if not isinstance(stats, dict) or not _is_int(stats.get("count")) or stats["count"] < 1:
        raise ValueError("benchmark record's stats need count >= 1")
    for key in STAT_KEYS:
        value = stats.get(key)
        if value is not None and not _is_number(value):
            raise ValueError(f"benchmark record's stats.{key} is {value!r}, not a number")
    if not _is_number(stats.get("mean_us")):
        raise ValueError("benchmark record's stats lack mean_us")


def append_record(path, record):
    """Append ``record`` as one line and fsync: the whole line or nothing. One ``os.write`` of the line on an
    O_APPEND descriptor; if it fails or writes part of it (a full disk), the file is cut back to its old
    length, so a later report never meets a fragment of it."""
    validate_record(record)
    line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        # A previous writer killed mid-line must not glue its fragment to this record.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"wrote {written} of {len(line)} bytes")
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, size)
            failure = OSError(f"cannot append a record to {os.fspath(path)} ({exc.strerror or exc}); the file is left "
                              "as it was: free some space (or give another --json-lines) and rerun")
            failure.errno = exc.errno
            raise failure from None
    finally:
        os.close(fd)


def read_records(path, warn=None):
    """All records of a JSON-lines file (blank lines skipped). A bad line (not UTF-8, not JSON, not a valid
    record) raises ValueError naming ``path:line``; with ``warn`` it is passed to ``warn(message)`` and
    skipped instead, so one torn line does not cost the rest of a run."""
    records = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                record = json.loads(line)
                validate_record(record)
            except UnicodeDecodeError:
                problem = f"{os.fspath(path)}:{number}: not UTF-8 text (a binary file?)"
            except ValueError as exc:
                problem = f"{os.fspath(path)}:{number}: {first_line(exc)}"
            else:
                records.append(record)
                continue
            if warn is None:
                raise ValueError(problem)
            warn(problem)
    return records
