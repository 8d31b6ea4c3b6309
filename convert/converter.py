"""Keras -> TFLite through a SavedModel (the route that holds across Keras 3 / TF versions), in four
modes; int8 is full-integer post-training quantization with per-channel weights. The file is only
written, atomically, after the all-int8 audit passed."""
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from convert import CALIBRATED_MODES, DEFAULT_CALIBRATION_STEPS, IO_TYPES, QUANTIZE_MODES, metadata, mixed, rewrites
from convert.calibration import CALIBRATION_SEED, image_source, takes_pixels
from convert.opversions import DEFAULT_MIN_RUNTIME, check_min_runtime, parse_version, per_tensor_dense
from convert.progress import progress
from convert.source import as_source
from convert.verify import EDGE_OPS, audit
from ghostnet_tf.files import check_writable, write_atomic
from ghostnet_tf.preprocessing import model_inputs
from ghostnet_tf.quiet import native_output_silenced


@dataclass(frozen=True)
class FileOptions:
    """What the written file carries besides the model, and the oldest runtime that must load it.
    ``labels``: class names in output order (None: the model source's, else ``metadata.default_labels``)."""
    labels: tuple = None
    author: str = None
    license: str = None
    min_runtime: str = DEFAULT_MIN_RUNTIME


@dataclass
class Conversion:
    path: Path
    quantize: str
    io: str
    input_size: tuple
    takes_pixels: bool
    size_bytes: int
    seconds: dict  # export, convert (includes calibration), total
    calibration: dict  # source, count, skipped, range_anchored; None unless int8
    rewrites: list  # the export rewrites that applied (convert.rewrites)
    keep_float: dict  # the ops kept in float and why (convert.mixed); None for a fully quantized model
    audit: dict  # verify.audit of the written file
    metadata: dict  # what the file's TFLite metadata says (convert.metadata.read), labels shortened to a count


def default_io(quantize, pixels):
    """Full int8 takes and gives uint8 where the model takes camera pixels: what camera frames, MediaPipe and
    the TFLite Task Library feed (MediaPipe refuses int8 inputs); int8 otherwise; float32 for other modes."""
    if quantize != "int8":
        return "float32"
    return "uint8" if pixels else "int8"


def input_size_of(model, input_size=None):
    """The (height, width) to convert at: the model's own, or ``input_size`` where the model leaves it open."""
    if len(model.inputs) != 1:
        raise ValueError(f"the converter handles single-input models; this one has {len(model.inputs)} inputs")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"expected a model taking RGB images (batch, height, width, 3), got input shape {shape}")
    model_size = shape[1:3]
    if input_size is None:
        if None in model_size:
            raise ValueError(f"--input-size: the model's input {shape} has no fixed size; give one, e.g. 224")
        return tuple(model_size)
    input_size = tuple(input_size)
    for fixed, wanted in zip(model_size, input_size):
        if fixed is not None and fixed != wanted:
            raise ValueError(f"--input-size: the model is built for {model_size[0]}x{model_size[1]}, "
                             f"got {input_size[0]}x{input_size[1]}")
    return input_size


def check_options(quantize, io, keep_float=None):
    if keep_float is not None and quantize != "int8":
        raise ValueError(f"--keep-float: selective float ops are for --quantize int8 (got --quantize {quantize})")
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"--quantize: expected one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    if io not in IO_TYPES:
        raise ValueError(f"--io: expected one of {', '.join(IO_TYPES)}, got {io!r}")
    if quantize != "int8" and io != "float32":
        raise ValueError(f"--io {io}: integer inputs/outputs need --quantize int8 (got --quantize {quantize})")


def calibration_inputs(images, pixels):
    """Model inputs for calibration. For pixel models the input range is pinned to exactly [0, 255]
    (one black and one white pixel in the first image if the data never reaches both ends), so the
    quantized input gets scale 1: uint8 input zero-point 0, int8 input zero-point -128. Camera
    pixels then pass straight in."""
    inputs = model_inputs(images, pixels)
    anchored = bool(pixels and (inputs.min() > 0 or inputs.max() < 255))
    if anchored:
        inputs = inputs.copy()
        inputs[0, 0, 0, :] = 0.0
        inputs[0, 0, -1, :] = 255.0
    return inputs, anchored


# A private TFLiteConverter flag (TF 2.x): per-tensor dense weights in dynamic-range quantization, which keeps
# FULLY_CONNECTED at an op version that runtimes before 2.17 have. Set only where the converter defines it.
PER_TENSOR_DENSE_FLAG = "_experimental_disable_per_channel_quantization_for_dense_layers"


def configure(converter, quantize, io, representative_dataset, min_runtime=DEFAULT_MIN_RUNTIME):
    import tensorflow as tf

    if quantize != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "dynamic" and per_tensor_dense(min_runtime) and hasattr(converter, PER_TENSOR_DENSE_FLAG):
        setattr(converter, PER_TENSOR_DENSE_FLAG, True)  # else the --min-runtime check names the op
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int16x8":  # int16 activations, int8 weights: TFLite's 16x8 kernels, float32 in and out
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if quantize == "int8":
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter._experimental_disable_per_channel = False  # per-channel weights (the default), made explicit
        io_dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io]
        converter.inference_input_type = io_dtype
        converter.inference_output_type = io_dtype


def export_saved_model(model, input_size, directory):
    """Save the inference function (batch fixed to 1) and the model's variables as a SavedModel.

    A plain ``tf.Module`` rather than ``Model.export``: the same SavedModel route, without the Keras
    object graph, which halves the export time of GhostNet-1.0x (10-12 s against 24 s here)."""
    import tensorflow as tf

    spec = tf.TensorSpec((1, *input_size, 3), tf.float32, name="image")
    module = tf.Module()
    module.model_variables = [v.value for v in model.variables]  # the backing tf.Variables
    module.serve = tf.function(lambda image: model(image, training=False), input_signature=[spec], autograph=False)
    tf.saved_model.save(module, directory, signatures=module.serve.get_concrete_function())


def _converter_error(exc):
    """One line naming the TensorFlow ops that have no TFLite builtin kernel, instead of an MLIR dump."""
    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return (f"TFLite conversion failed: no TFLite builtin op for {', '.join(ops)}; "
                "replace the layer that uses it")
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower()] or [text.strip()]
    return f"TFLite conversion failed: {lines[0][:300]}"


def convert_bytes(model, quantize="int8", io=None, calibration=None, calibration_steps=DEFAULT_CALIBRATION_STEPS,
                  input_size=None, show_progress=True, rewrite=None, keep_float=None,
                  min_runtime=DEFAULT_MIN_RUNTIME):
    """Convert to TFLite in memory; returns (content, details). ``calibration``: folder, .npy/.npz, array
    of [0, 255] images, or None for the built-in synthetic set (int8 only). ``rewrite``: the export-only
    graph rewrites to try (``convert.rewrites``; None: the default set of the precision; each applies only
    where the model has its pattern). ``keep_float``: a ``convert.mixed.KeepFloat`` (int8 only): the ops
    to leave in float, named or searched on the calibration images. ``model``: a Keras model or a
    ``convert.source.ModelSource`` (whose transform prepares the calibration images)."""
    import tensorflow as tf

    source = as_source(model)
    model = source.model
    pixels = takes_pixels(model)
    io = io or default_io(quantize, pixels)
    check_options(quantize, io, keep_float)
    size = input_size_of(model, input_size)
    if io == "uint8" and not pixels:
        raise ValueError("--io uint8: the model does not take raw [0, 255] pixels (its input is not normalized "
                         "inside, e.g. GhostNet(include_preprocessing=False)), so uint8 camera frames do not fit "
                         "its input range; use --io int8 or float32, or a model with include_preprocessing=True")
    names = rewrites.default_rewrites(quantize) if rewrite is None else rewrite
    exported_model, applied = rewrites.apply(model, size, names)
    details = {"quantize": quantize, "io": io, "input_size": size, "takes_pixels": pixels, "calibration": None,
               "rewrites": applied, "keep_float": None}
    representative_dataset = None
    if quantize in CALIBRATED_MODES:
        images = image_source(calibration, size, calibration_steps, "--calibration", CALIBRATION_SEED, show_progress,
                              source.transform_for(size))
        inputs, anchored = calibration_inputs(images.images, pixels)
        details["calibration"] = {**images.describe(), "range_anchored": anchored}

        def representative_dataset():
            for sample in progress(inputs, len(inputs), "calibrating", enabled=show_progress):
                yield [sample[None]]

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ghostnet-export-") as directory:
        export_saved_model(exported_model, size, directory)
        exported = time.perf_counter()
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        configure(converter, quantize, io, representative_dataset, min_runtime)
        converter._experimental_calibrate_only = keep_float is not None  # calibrate here, quantize below
        try:
            with native_output_silenced():  # the converter prints its options and MLIR passes on fd 1/2
                content = converter.convert()
        except Exception as exc:  # ConverterError and friends carry an MLIR dump; reduce it to one line
            raise ValueError(_converter_error(exc)) from None
    if keep_float is not None:
        content, details["keep_float"] = mixed.keep_float(content, io, keep_float, model,
                                                          model_inputs(images.images, pixels), show_progress)
    end = time.perf_counter()
    details["seconds"] = {"export": round(exported - start, 2), "convert": round(end - exported, 2),
                          "total": round(end - start, 2)}
    return content, details


def int8_failure(offenders):
    """Name the ops that stayed float (the converter wraps them in DEQUANTIZE/QUANTIZE) in one line."""
    float_ops = [o for o in offenders if o["op"] not in EDGE_OPS] or offenders
    named, seen = [], set()
    for o in float_ops:
        if o["op_index"] not in seen:
            seen.add(o["op_index"])
            named.append(f"{o['op']} ({o['dtype']} tensor {o['tensor']!r})")
    return (f"not every op can run in int8, nothing written: {'; '.join(named[:5])}"
            f"{f' and {len(named) - 5} more' if len(named) > 5 else ''}; "
            "use --quantize dynamic or float16, or replace that layer")


def convert_model(model, out_path, quantize="int8", io=None, calibration=None,
                  calibration_steps=DEFAULT_CALIBRATION_STEPS, input_size=None, show_progress=True,
                  rewrite=None, keep_float=None, options=FileOptions()):
    """Convert a Keras model to a .tflite file with its TFLite metadata (labels, normalization, the evaluation
    transform) and audit it; returns a ``Conversion``.

    int8 models are written only if every op runs in int8 (ValueError naming the offenders otherwise), or
    every op but those ``keep_float`` chose; every file only if ``options.min_runtime`` can load it.
    ``model``: a Keras model or a ``convert.source.ModelSource`` (its transform and class names go into the file;
    ``options.labels`` overrides the names).
    """
    check_writable(out_path, "--output")
    parse_version(options.min_runtime)
    source = as_source(model)
    model = source.model
    labels = output_labels(model, options.labels if options.labels is not None else source.labels)
    content, details = convert_bytes(source, quantize, io, calibration, calibration_steps, input_size, show_progress,
                                     rewrite, keep_float, options.min_runtime)
    kept = details["keep_float"]
    checked = audit(content, details["quantize"], kept["layers"] if kept else ())
    if checked["int8"] is not None and not checked["int8"]["ok"]:
        raise ValueError(int8_failure(checked["int8"]["offenders"]))
    check_min_runtime(content, options.min_runtime)
    info = metadata.model_info(model.name, details["quantize"], details["io"], details["takes_pixels"],
                               details["input_size"], source.transform_for(details["input_size"]), labels,
                               options.author, options.license)
    content = metadata.attach(content, info)
    written = metadata.read(content)
    written["labels"] = len(written["labels"]) if written["labels"] else None
    write_atomic(out_path, content)
    return Conversion(path=Path(out_path), size_bytes=len(content), audit=checked, metadata=written, **details)


def output_labels(model, labels=None):
    """The class names the file will carry, checked against the model's output before any work."""
    if len(model.outputs) != 1:
        raise ValueError(f"the converter handles single-output classifiers; this model has {len(model.outputs)} "
                         "outputs")
    classes = model.outputs[0].shape[-1]
    labels = metadata.default_labels(classes, labels)
    if labels is not None and len(labels) != classes:
        raise ValueError(f"--labels: {len(labels)} class names for a model with {classes} outputs")
    return labels
