"""Keras -> TensorFlow Lite conversion, int8 post-training quantization and verification.

Python API (imported on first use, so the ``ghostnet`` CLI starts without TensorFlow)::

    from convert import ConversionSpec, convert, convert_model, evaluate
    report = convert(model, "m.tflite", ConversionSpec(quantize="int8", calibration="photos/"))  # `ghostnet convert`
    print(report.format()); report.write("m.json")
    conversion = convert_model(model, "m.tflite", quantize="int8", calibration="photos/")   # the file only
"""
import importlib

QUANTIZE_MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
CALIBRATED_MODES = ("int8", "int16x8")  # the modes that quantize activations, from calibration images
IO_TYPES = ("int8", "uint8", "float32")
# Defaults of the API and of `ghostnet convert`, defined here so the CLI reads them without TensorFlow.
DEFAULT_CALIBRATION_STEPS = 100
DEFAULT_EVAL_COUNT = 32

_EXPORTS = {
    "convert_model": "convert.converter",
    "convert_bytes": "convert.converter",
    "Conversion": "convert.converter",
    "convert": "convert.api",
    "convert_and_verify": "convert.api",
    "ConversionReport": "convert.report",
    "ConversionSpec": "convert.spec",
    "ConversionJob": "convert.converter",
    "FileOptions": "convert.spec",
    "verify_model": "convert.api",
    "evaluate": "convert.evaluation",
    "load_keras_model": "convert.source",
    "make_interpreter": "ghostnet_tf.runtime",
}
__all__ = sorted([*_EXPORTS, "QUANTIZE_MODES", "IO_TYPES", "DEFAULT_CALIBRATION_STEPS", "DEFAULT_EVAL_COUNT"])


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'convert' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return __all__
