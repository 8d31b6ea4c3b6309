"""benchmark_model's measurement done in-process with the TFLite runtime (LiteRT), for ``bench local``.

Runs on this machine or an ARM Linux board; produces the same record as ``bench adb``.
"""
import os
import platform
import sys
import time

import numpy as np

from android_bench import modelfile, results
from ghostnet_tf.preprocessing import model_inputs, synthetic_photo
from ghostnet_tf.runtime import get_runtime, make_interpreter, quantize


def takes_pixels(detail):
    """Whether an input takes [0, 255] pixels: integer inputs quantized with scale 1 do (the converter pins
    pixel models' input range), other quantized inputs are normalized; float inputs are taken for pixels,
    the form every model this project converts has."""
    scale = detail["quantization"][0]
    return not scale or abs(scale - 1.0) < 1e-6


def realistic_input(detail, rng, pixels=None):
    """What the model really sees: for an image input (1, H, W, 3) a photo-like frame from the one
    preprocessing path (pixels, or ImageNet-normalized when ``pixels`` is False; None: ``takes_pixels``),
    quantized with the tensor's own scale/zero point; for other inputs, values of the right kind."""
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    if len(shape) == 4 and shape[3] == 3:
        pixels = takes_pixels(detail) if pixels is None else pixels
        frames = np.stack([np.round(synthetic_photo(rng, *shape[1:3])) for _ in range(shape[0])])
        values = model_inputs(frames, pixels)
    else:
        values = np.clip(rng.standard_normal(shape), -2.5, 2.5)
    if dtype.kind == "f":
        return values.astype(dtype)
    if dtype == np.bool_:
        return values > 0
    if not detail["quantization"][0]:  # integer without quantization: small non-negative values (ids, indices)
        return rng.integers(0, min(np.iinfo(dtype).max, 100) + 1, size=shape).astype(dtype)
    return quantize(values, detail)


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


def run_local(model_path, threads=1, runs=50, warmup=5, use_xnnpack=True, seed=0, pixels=None):
    """Benchmark ``model_path`` like benchmark_model and return the result record (not yet written).
    ``pixels``: whether the model takes [0, 255] pixels (None: judged from its input, see ``takes_pixels``).

    Init = interpreter creation + tensor allocation; the first warm-up invoke is the first inference;
    ``runs`` timed invokes follow. Peak memory is this process's peak RSS (it includes Python itself).
    """
    if threads < 1 or runs < 1 or warmup < 0:
        raise ValueError(f"need threads >= 1, runs >= 1 and warmup >= 0 (got {threads}, {runs}, {warmup})")
    model = modelfile.check_tflite(model_path)
    start = time.perf_counter()
    interpreter = make_interpreter(model_path=model_path, num_threads=threads, use_xnnpack=use_xnnpack)
    init_us = (time.perf_counter() - start) * 1e6
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], realistic_input(detail, rng, pixels))
    warmup_samples = _timed_invokes(interpreter, max(1, warmup))
    measured = _timed_invokes(interpreter, runs)
    runtime = get_runtime()
    timings = {"init_us": init_us, "first_inference_us": warmup_samples[0],
               "warmup": results.summarize(warmup_samples), "measured": results.summarize(measured),
               "memory": {"peak_mb": peak_rss_mb(), "source": "peak RSS of the benchmarking process"}}
    return results.make_record(mode="local", model=model, runtime={"name": runtime.name, "version": runtime.version},
                               delegate="xnnpack" if use_xnnpack else "cpu", threads=threads,
                               cpu_mask=_affinity_mask(), device=local_facts(), timings=timings)

