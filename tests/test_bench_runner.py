"""``compare.benchmark_rounds``: the plan (round by round, every model, precision and configuration) run with
any ``Runner``, here a stand-in that returns records of the schema without measuring."""
import threading
import time
from types import SimpleNamespace

import pytest

from android_bench import compare, results
from android_bench.runner import RunConfig

MODEL = {"path": "/m.tflite", "sha256": "0" * 64, "size_bytes": 10, "input_shape": [1, 8, 8, 3],
         "input_dtype": "uint8", "input_quantization": None}
ENTRIES = [SimpleNamespace(name=name, top1=None) for name in ("a", "b")]
CONVERTED = {(e.name, p): {"path": f"/{e.name}-{p}.tflite", "meta": {"params": 1, "macs": 2, "weights": "random"},
                           "report": {"seconds": {"total": 1.0}, "versions": {}}}
             for e in ENTRIES for p in compare.PRECISIONS}


class StandIn:
    """Records what it was asked to measure; ``slow`` makes the first measurement finish last."""

    def __init__(self, slow=None, fail=None):
        self.calls, self.slow, self.fail, self.lock = [], slow, fail, threading.Lock()

    def measure(self, model_file, run_config):
        if model_file == self.slow:
            time.sleep(0.2)
        if model_file == self.fail:
            raise RuntimeError("the emulated run failed")
        with self.lock:
            self.calls.append((model_file, run_config.threads))
        timings = {"measured": results.summarize([1000.0 * run_config.threads]), "memory": {}}
        return results.make_record(mode="local", model={**MODEL, "path": model_file}, runtime={"name": "stand-in"},
                                   delegate=run_config.delegate, threads=run_config.threads, cpu_mask=None,
                                   device={}, timings=timings)


def test_rounds_measure_every_configuration_once_per_round(tmp_path):
    runner, path = StandIn(), tmp_path / "results.jsonl"
    configs = [RunConfig(threads=1, runs=3), RunConfig(threads=2, runs=3)]
    said = []
    compare.benchmark_rounds(ENTRIES, CONVERTED, runner, configs, 2, path, log=said.append)
    plan = [(f"/{name}-{precision}.tflite", threads) for name in ("a", "b") for precision in compare.PRECISIONS
            for threads in (1, 2)]
    assert runner.calls == plan * 2
    records = results.read_records(path)
    assert [(r["label"]["round"], r["model"]["path"], r["threads"]) for r in records] == \
        [(rnd, *step) for rnd in (0, 1) for step in plan]
    assert said[0] == "compare: round 1/2 over 8 configurations" and said[9] == "compare: round 2/2 over 8 configurations"
    assert said[1].startswith("  [1/16] a float32 1 thread(s): median 1.00 ms (")


def test_jobs_measure_ahead_but_append_in_plan_order(tmp_path):
    runner, path = StandIn(slow="/a-float32.tflite"), tmp_path / "results.jsonl"
    compare.benchmark_rounds(ENTRIES, CONVERTED, runner, [RunConfig()], 1, path, jobs=2)
    assert runner.calls[0] != ("/a-float32.tflite", 1)  # the slow first one finished later ...
    assert [r["model"]["path"] for r in results.read_records(path)] == [  # ... but was written first
        f"/{name}-{precision}.tflite" for name in ("a", "b") for precision in compare.PRECISIONS]


def test_a_runner_failure_names_the_model_in_one_line(tmp_path):
    runner = StandIn(fail="/b-int8.tflite")
    with pytest.raises(ValueError, match="^b int8: the emulated run failed$"):
        compare.benchmark_rounds(ENTRIES, CONVERTED, runner, [RunConfig()], 1, tmp_path / "r.jsonl", jobs=2)
    assert len(results.read_records(tmp_path / "r.jsonl")) == 3  # the measurements before it are kept
