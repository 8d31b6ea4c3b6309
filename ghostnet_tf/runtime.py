"""The one place that picks the TFLite runtime: LiteRT, else tflite_runtime, else tf.lite.

The converter's verification and evaluation and the benchmarks all load models through here; it lives
in the base package so that neither ``convert`` nor ``android_bench`` owns what both use.
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    name: str  # "ai-edge-litert", "tflite-runtime" or "tensorflow"
    version: str
    interpreter_class: type
    op_resolver_type: type  # enum with AUTO and BUILTIN_WITHOUT_DEFAULT_DELEGATES


def _litert():
    module = importlib.import_module("ai_edge_litert.interpreter")
    package = importlib.import_module("ai_edge_litert")
    return Runtime("ai-edge-litert", getattr(package, "__version__", "unknown"),
                   module.Interpreter, module.OpResolverType)


def _tflite_runtime():
    """tflite-runtime: only where LiteRT is missing (e.g. an old ARM board); its last release, 2.14, needs
    numpy < 2 and Python <= 3.11, and with numpy 2 it fails at load time, not at import."""
    module = importlib.import_module("tflite_runtime.interpreter")
    package = importlib.import_module("tflite_runtime")
    return Runtime("tflite-runtime", getattr(package, "__version__", "unknown"),
                   module.Interpreter, module.OpResolverType)


def _tensorflow():
    tf = importlib.import_module("tensorflow")
    return Runtime("tensorflow", tf.__version__, tf.lite.Interpreter, tf.lite.experimental.OpResolverType)


_CHAIN = (_litert, _tflite_runtime, _tensorflow)
_cached = None


def get_runtime():
    """The first importable runtime of the chain LiteRT -> tflite_runtime -> tf.lite (cached)."""
    global _cached
    if _cached is None:
        for candidate in _CHAIN:
            try:
                _cached = candidate()
                break
            except ImportError:
                continue
        else:
            raise ImportError("no TFLite runtime found: pip install ai-edge-litert "
                              "(or tflite-runtime, or tensorflow)")
    return _cached


def make_interpreter(model_path=None, model_content=None, num_threads=None, use_xnnpack=True):
    """A TFLite interpreter (tensors allocated). ``use_xnnpack=False`` runs the builtin kernels alone,
    so the op list shows the real ops instead of one delegate node."""
    from ghostnet_tf.cliutil import first_line
    from ghostnet_tf.quiet import native_output_silenced

    runtime = get_runtime()
    resolver = runtime.op_resolver_type
    try:
        with native_output_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            interpreter = runtime.interpreter_class(
                model_path=None if model_path is None else str(model_path),
                model_content=model_content,
                num_threads=num_threads,
                experimental_op_resolver_type=(resolver.AUTO if use_xnnpack
                                               else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:  # flatbuffer and allocation errors name no file
        source = "the model" if model_path is None else str(model_path)
        raise ValueError(f"{source} is not a TFLite model the runtime can load ({first_line(exc)})") from None
    return interpreter


def quantization(detail):
    """(scale, zero_point) of an input/output detail; (0.0, 0) means a float tensor."""
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def quantize(values, detail):
    """Float values -> an int8/uint8 tensor's integers with its own scale and zero-point (clipped)."""
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    scale, zero_point = quantization(detail)
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(values) / scale + zero_point), info.min, info.max).astype(dtype)

