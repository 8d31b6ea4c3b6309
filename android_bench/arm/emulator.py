"""``ghostnet bench arm``: a .tflite file on the real aarch64 LiteRT under ``qemu-aarch64 -cpu CORE``, with the
guest instructions of each inference counted exactly by the plugin (counter.c).

An instruction count is not a latency: the emulator models no caches, no pipeline and no memory stalls. It
is the work the phone's kernels do, free of noise, comparable between models on one core. Wall time under
emulation says nothing about a phone and is never recorded.
"""
import json
import os
import re
import statistics
import tempfile

import numpy as np

from android_bench import modelfile, results
from android_bench.arm import breakdown, cpus, install
from android_bench.local_runner import realistic_input
from ghostnet_tf.runtime import get_runtime, make_interpreter

GUEST_SCRIPT = os.path.join(os.path.dirname(__file__), "guest.py")
REGION = re.compile(r"^ghostnet-region (\d+) insns=(\d+) dot=(\d+) mm=(\d+)$", re.M)
XNNPACK_LINE = "Created TensorFlow Lite XNNPACK delegate"


def parse_regions(log_text, runs, models=1):
    """Instruction counts from the plugin's log, one dict per model: the marker overhead, the first
    inference and ``runs`` more (the median is the figure; min and max show that they agree)."""
    regions = [tuple(int(v) for v in m.groups()[1:]) for m in REGION.finditer(log_text)]
    per_model = runs + 2
    if len(regions) != per_model * models:
        raise install.ArmError(f"the counting plugin reported {len(regions)} regions, expected {per_model * models}")
    counts = []
    for start in range(0, len(regions), per_model):
        chunk = regions[start:start + per_model]
        overhead = chunk[0][0]
        steady = [r[0] - overhead for r in chunk[2:]]
        counts.append({"count": runs, "per_inference": int(statistics.median(steady)), "min": min(steady),
                       "max": max(steady), "first_inference": chunk[1][0] - overhead, "marker_overhead": overhead,
                       "dot_product_per_inference": int(statistics.median(r[1] for r in chunk[2:])),
                       "i8mm_per_inference": int(statistics.median(r[2] for r in chunk[2:]))})
    return counts


def _agreement(arm_out, host_out, runtime):
    diff = np.abs(arm_out.astype(np.float64) - host_out.astype(np.float64))
    return {"host_runtime": f"{runtime.name} {runtime.version}", "host_machine": os.uname().machine,
            "max_abs_diff": float(diff.max()) if diff.size else 0.0, "bit_exact": bool(np.array_equal(arm_out, host_out)),
            "output_dtype": str(arm_out.dtype)}


def run_on_core(setup, model_path, cpu, x, runs=3, use_xnnpack=True):
    """Run ``model_path`` on input ``x`` (already in the model's input dtype) on the emulated core ``cpu``.

    Returns (instruction counts as in ``parse_regions``, the model's output, facts about core and guest).
    """
    counts, output, facts = run_models(setup, [model_path], cpu, x, runs, use_xnnpack)
    return counts[0], output, facts


def run_models(setup, model_paths, cpu, x, runs=3, use_xnnpack=True):
    """``run_on_core`` for several models on the same input in one emulated process: a list of counts, the
    first model's output, the facts."""
    core = cpus.core(cpu)
    prefix, facts = install.core_prefix(setup, core.name)
    model_path = model_paths[0]
    models = [os.path.abspath(p) for p in model_paths]
    with tempfile.TemporaryDirectory(prefix="ghostnet-arm-") as tmp:
        input_path, output_path = os.path.join(tmp, "input.npy"), os.path.join(tmp, "output.npy")
        log_path = os.path.join(tmp, "plugin.log")
        np.save(input_path, x)
        done = install.run_guest(setup, core.name, prefix, [GUEST_SCRIPT, input_path, output_path, str(runs),
                                                 "1" if use_xnnpack else "0", *models], plugin_log=log_path)
        if done.returncode != 0:
            raise install.ArmError(f"the emulated run of {model_path} on {core.name} failed: "
                                   f"{' | '.join(done.stderr.strip().splitlines()[-3:])}")
        if "Error in cpuinfo" in done.stderr:
            raise install.ArmError(f"LiteRT's cpuinfo could not read the emulated {core.name}; its counts would "
                                   "be those of the slow fallback kernels")
        if use_xnnpack and XNNPACK_LINE not in done.stderr:
            raise install.ArmError(f"XNNPACK did not run under emulation on {core.name}: the counts would not be "
                                   "the phone's kernels")
        with open(log_path, encoding="utf-8") as handle:
            counts = parse_regions(handle.read(), runs, len(models))
        guest = json.loads(done.stdout.strip().splitlines()[-1])
        output = np.load(output_path)
    facts = {**facts, "note": core.note, "emulator": "qemu-aarch64", "emulator_version": setup["qemu"],
             "guest_python": guest["python"], "guest_runtime_version": guest["runtime_version"]}
    return counts, output, facts


def emulate(model_path, cpu, runs=3, use_xnnpack=True, cache=None, seed=0, per_block=False, log=None):
    """Run ``model_path`` on the emulated core ``cpu`` and return its ``arm-emulated`` record (not yet written).

    The same input goes through this machine's runtime, and the record says whether both agree bit for bit.
    ``per_block`` adds the breakdown of the count by op, block, op type and resolution (``breakdown.py``).
    """
    if runs < 1:
        raise ValueError(f"--runs must be >= 1, got {runs}")
    cpus.core(cpu)
    setup = install.load(cache)
    model = modelfile.check_tflite(model_path)
    host = make_interpreter(model_path=model_path, num_threads=1, use_xnnpack=use_xnnpack)
    detail = host.get_input_details()[0]
    x = realistic_input(detail, np.random.default_rng(seed))
    host.set_tensor(detail["index"], x)
    host.invoke()
    host_out = host.get_tensor(host.get_output_details()[0]["index"])
    instructions, arm_out, device = run_on_core(setup, model_path, cpu, x, runs, use_xnnpack)
    runtime = {"name": "ai-edge-litert", "version": device.pop("guest_runtime_version"),
               "platform": setup["wheel_platform"]}
    split = None
    if per_block:
        split = breakdown.per_op(model_path, lambda paths: run_models(setup, paths, cpu, x, 1, use_xnnpack)[0], log)
    return results.make_arm_record(model=model, runtime=runtime, delegate="xnnpack" if use_xnnpack else "cpu",
                                   device=device, instructions=instructions,
                                   host_agreement=_agreement(arm_out, host_out, get_runtime()), breakdown=split)
