"""Runs inside the emulated aarch64 Python: .tflite models, their invokes marked for the counting plugin.

Standalone on purpose (only numpy and ai_edge_litert exist in the guest). Usage:
    guest.py INPUT.npy OUTPUT.npy RUNS XNNPACK(0|1) MODEL [MODEL ...]
Per model, regions in order: one empty region (the markers' own cost), the first invoke, then RUNS invokes;
after each invoke, outside its region, a progress line on stderr.
Several models share one process (a per-op breakdown runs hundreds of cut models). OUTPUT.npy gets the
first model's output. Prints one JSON line with what the guest saw (runtime version, machine, output dtype).
"""
import ctypes
import json
import platform
import sys

import numpy as np
from ai_edge_litert import interpreter as litert

MARKER_SYSCALL, MARKER_MAGIC = 172, 0xC0FFEE  # getpid on aarch64; must match counter.c
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.syscall.argtypes = (ctypes.c_long, ctypes.c_ulong, ctypes.c_ulong)


def mark(phase):
    _libc.syscall(MARKER_SYSCALL, MARKER_MAGIC, phase)


def count(model, x, runs, xnnpack, place):
    """Count ``model``'s invokes; after each one (outside the counted region) a progress line on stderr,
    ``ghostnet-progress MODEL/MODELS INFERENCE/INFERENCES``, which the host reports."""
    resolver = litert.OpResolverType
    interpreter = litert.Interpreter(
        model_path=model, num_threads=1,
        experimental_op_resolver_type=resolver.AUTO if xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    invoke = interpreter.invoke
    mark(1)
    mark(2)
    for done in range(1, 2 + runs):
        mark(1)
        invoke()
        mark(2)
        print(f"ghostnet-progress {place} {done}/{1 + runs}", file=sys.stderr, flush=True)
    output_detail = interpreter.get_output_details()[0]
    return interpreter.get_tensor(output_detail["index"]), output_detail


def main(input_path, output_path, runs, xnnpack, *models):
    x = np.load(input_path)
    first, detail = count(models[0], x, int(runs), xnnpack == "1", f"1/{len(models)}")
    np.save(output_path, first)
    for number, model in enumerate(models[1:], 2):
        count(model, x, int(runs), xnnpack == "1", f"{number}/{len(models)}")
    import ai_edge_litert

    print(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                      "runtime_version": getattr(ai_edge_litert, "__version__", "unknown"),
                      "output_dtype": str(np.dtype(detail["dtype"]))}))


if __name__ == "__main__":
    main(*sys.argv[1:])
