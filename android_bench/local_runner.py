"""benchmark_model's measurement done in-process with the TFLite runtime (LiteRT), for ``bench local``.

Runs on this machine or an ARM Linux board; produces the same record as ``bench adb``. ``LocalRunner`` is
the runner (``android_bench.runner``).
"""
import os
import platform
import sys
import time

import numpy as np

from android_bench import modelfile, results
from android_bench.inputs import input_contracts
from android_bench.runner import RunConfig
from ghostnet_tf.runtime import get_runtime, make_interpreter


def peak_rss_mb():
    """This process's peak resident set size (MB), or None where ``resource`` does not exist."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB on Linux


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def local_facts():
    """What the record says about the machine that ran a local benchmark."""
    return {"hostname": platform.node(), "system": platform.system(), "release": platform.release(),
            "machine": platform.machine(), "cpu_model": _cpu_model(), "cpu_count": os.cpu_count()}


def _affinity_mask():
    """Hex mask of the cores this process may run on (e.g. after ``taskset``), None if unknown."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return format(sum(1 << cpu for cpu in os.sched_getaffinity(0)), "x")


def _timed_invokes(interpreter, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        interpreter.invoke()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


class LocalRunner:
    """LiteRT in this process: the runner of ``bench local`` and of ``bench compare`` on this machine."""

    def measure(self, model_file, run_config):
        """Benchmark ``model_file`` like benchmark_model and return the result record (not yet written), fed
        what its input contract says it takes (``inputs.py``).

        Init = interpreter creation + tensor allocation; the first warm-up invoke is the first inference;
        ``runs`` timed invokes follow. Peak memory is this process's peak RSS (it includes Python itself).
        """
        run_config.refuse_accelerator("bench local")
        model = modelfile.check_tflite(model_file)
        start = time.perf_counter()
        interpreter = make_interpreter(model_path=model_file, num_threads=run_config.threads,
                                       use_xnnpack=run_config.use_xnnpack)
        init_us = (time.perf_counter() - start) * 1e6
        rng = np.random.default_rng(run_config.seed)
        for contract in input_contracts(model_file, interpreter):
            interpreter.set_tensor(contract.index, contract.sample(rng))
        warmup_samples = _timed_invokes(interpreter, max(1, run_config.warmup))
        measured = _timed_invokes(interpreter, run_config.runs)
        runtime = get_runtime()
        timings = {"init_us": init_us, "first_inference_us": warmup_samples[0],
                   "warmup": results.summarize(warmup_samples), "measured": results.summarize(measured),
                   "memory": {"peak_mb": peak_rss_mb(), "source": "peak RSS of the benchmarking process"}}
        return results.make_record(mode="local", model=model,
                                   runtime={"name": runtime.name, "version": runtime.version},
                                   delegate=run_config.delegate, threads=run_config.threads,
                                   cpu_mask=_affinity_mask(), device=local_facts(), timings=timings)


def run_local(model_file, **settings):
    """``LocalRunner().measure`` with the ``RunConfig`` fields as keywords, for scripts (tests/fake_adb's
    benchmark_model, tools/)."""
    return LocalRunner().measure(model_file, RunConfig(**settings))
