"""Parse the text that TFLite's ``benchmark_model`` prints, in all the variants met in the wild.

Handled: the current format (``INFO:`` prefix, p5/median/p95), older builds (no prefix, no percentiles),
output copied from logcat (``I tflite  :`` prefix, optionally after the logcat date/pid columns),
numbers in scientific notation, memory footprint lines and ``--enable_op_profiling`` tables.
"""
import re

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

# "INFO: ", "VERBOSE: ", "ERROR: ", or logcat's "... I tflite  : " (threadtime) / "I/tflite  ( 123): " (brief).
_PREFIX = re.compile(r"^(?:.*?\b[VDIWEF](?:\s+|/)tflite\s*(?:\(\s*\d+\))?\s*:\s?"
                     r"|(?:INFO|VERBOSE|WARNING|WARN|ERROR|DEBUG):\s?)")
_KEY_VALUE = re.compile(rf"(\w+)=({NUMBER})")
_INIT_SESSION = re.compile(rf"Initialized session in ({NUMBER})\s*ms")
_TIMINGS = re.compile(rf"Inference timings in us:\s*Init:\s*({NUMBER}),\s*First inference:\s*({NUMBER}),"
                      rf"\s*Warmup \(avg\):\s*({NUMBER}),\s*Inference \(avg\):\s*({NUMBER})")
_MODEL_SIZE = re.compile(rf"input model file size \(MB\):\s*({NUMBER})")
# Current builds: "Memory footprint delta from the start of the tool (MB): ..."; older: "Peak memory footprint (MB): ...".
_FOOTPRINT = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*"
                        rf"init=({NUMBER})\s+overall=({NUMBER})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\)[^:]*:\s*({NUMBER})")
# A "Run Order" / "Top by Computation Time" row: type, first, avg ms, %, cdf%, mem KB, times called, name.
_OP_ROW = re.compile(rf"^\s*(\S+)\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})%\s+({NUMBER})%\s+({NUMBER})\s+(\d+)\s+(.*)$")

# benchmark_model's names for the count= line -> the record's names (microseconds).
_STAT_NAMES = {"count": "count", "first": "first_us", "curr": "curr_us", "min": "min_us", "max": "max_us",
               "avg": "mean_us", "std": "std_us", "p5": "p5_us", "median": "median_us", "p95": "p95_us"}
STAT_KEYS = tuple(_STAT_NAMES.values())


def strip_prefix(line):
    """The message part of one output line, without the ``INFO:`` or logcat prefix."""
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def _stats(message):
    """The statistics of one ``count=...`` line; percentiles are None when the build did not print them."""
    values = {key: float(value) for key, value in _KEY_VALUE.findall(message)}
    stats = {name: values.get(key) for key, name in _STAT_NAMES.items()}
    stats["count"] = int(stats["count"])
    return stats


def _op_profile(lines):
    """Per-op-type summary of the "Run Order" table(s) of the regular (not initialization) runs.

    Built from the per-node rows rather than from "Summary by node type" because every build prints
    the Run Order table while the summary's columns changed between versions.
    """
    by_type = {}
    section_is_init = False
    in_run_order = False
    for line in lines:
        if "Profiling Info for Benchmark Initialization" in line:
            section_is_init = True
        elif "Profiling Info for Regular Benchmark Runs" in line:
            section_is_init = False
        if line.lstrip().startswith("="):
            in_run_order = "Run Order" in line
            continue
        row = _OP_ROW.match(line) if in_run_order and not section_is_init else None
        if row:
            node_type, _first, avg_ms, percent, _cdf, _mem, times_called, _name = row.groups()
            entry = by_type.setdefault(node_type, {"node_type": node_type, "nodes": 0, "avg_ms": 0.0,
                                                    "percent": 0.0, "times_called": 0})
            entry["nodes"] += 1
            entry["avg_ms"] += float(avg_ms)
            entry["percent"] += float(percent)
            entry["times_called"] += int(times_called)
    summary = sorted(by_type.values(), key=lambda e: -e["avg_ms"])
    for entry in summary:
        entry["avg_ms"] = round(entry["avg_ms"], 6)
        entry["percent"] = round(entry["percent"], 6)
    return summary or None


def _tail(lines, n=15):
    return "\n".join(line for line in lines[-n:])


def parse_benchmark_output(text):
    """Everything measurable in one ``benchmark_model`` output, times in microseconds, memory in MB.

    Returns ``{"init_us", "first_inference_us", "warmup", "measured", "warmup_mean_us",
    "inference_mean_us", "model_size_mb", "memory": {"init_delta_mb", "overall_delta_mb", "peak_mb"},
    "op_profile"}``; ``warmup``/``measured`` hold ``count, first_us, curr_us, min_us, max_us, mean_us,
    std_us, p5_us, median_us, p95_us``. Absent facts are None. Raises ValueError, quoting the tool's
    last lines, when the text holds no measured timings (the run failed).
    """
    raw_lines = text.splitlines()
    lines = [strip_prefix(line) for line in raw_lines]
    # Only lines that *start* with count= are benchmark stats; op profiling prints
    # "Timings (microseconds): count=..." and "Memory (bytes): count=..." which are not.
    stat_lines = [_stats(line) for line in lines if line.lstrip().startswith("count=")]
    if not stat_lines:
        raise ValueError("benchmark_model printed no timings; its last lines were:\n" + _tail(raw_lines))
    result = {"init_us": None, "first_inference_us": None, "warmup_mean_us": None, "inference_mean_us": None,
              "model_size_mb": None, "memory": {"init_delta_mb": None, "overall_delta_mb": None, "peak_mb": None},
              "warmup": stat_lines[-2] if len(stat_lines) > 1 else None, "measured": stat_lines[-1]}
    for line in lines:
        if match := _TIMINGS.search(line):
            init, first, warm, inference = (float(v) for v in match.groups())
            result.update(init_us=init, first_inference_us=first, warmup_mean_us=warm, inference_mean_us=inference)
        elif (match := _INIT_SESSION.search(line)) and result["init_us"] is None:
            result["init_us"] = float(match.group(1)) * 1000.0
        elif match := _MODEL_SIZE.search(line):
            result["model_size_mb"] = float(match.group(1))
        elif match := _FOOTPRINT.search(line):
            result["memory"]["init_delta_mb"], result["memory"]["overall_delta_mb"] = map(float, match.groups())
        elif match := _PEAK.search(line):
            result["memory"]["peak_mb"] = float(match.group(1))
    if result["first_inference_us"] is None and result["warmup"] is not None:
        result["first_inference_us"] = result["warmup"]["first_us"]
    result["op_profile"] = _op_profile(lines)
    return result
