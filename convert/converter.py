"""Keras -> TFLite through a SavedModel (the route that holds across Keras 3 / TF versions), in five
modes; int8 is full-integer post-training quantization with per-channel weights. The file is only
written, atomically, after the all-int8 audit passed. ``ConversionJob`` holds the stages."""
import contextlib
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from convert import DEFAULT_CALIBRATION_STEPS, debugging, metadata, mixed, rewrites
from convert.calibration import CALIBRATION_SEED, EVALUATION_SEED, image_source, shortfall, takes_pixels
from convert.opversions import DEFAULT_MIN_RUNTIME, check_min_runtime, per_tensor_dense
from convert.progress import progress
from convert.source import as_source
from convert.spec import ConversionSpec, FileOptions, io_dtype
from convert.verify import EDGE_OPS, audit
from ghostnet_tf.files import atomic_path, check_writable
from ghostnet_tf.preprocessing import model_inputs
from ghostnet_tf.quiet import native_output_silenced
from ghostnet_tf.spec import check_input_size


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
    content: bytes = field(default=b"", repr=False)  # the file as written


def default_io(quantize, pixels):
    """Full int8 takes and gives uint8 where the model takes camera pixels: what camera frames, MediaPipe and
    the TFLite Task Library feed (MediaPipe refuses int8 inputs); int8 otherwise; float32 for other modes."""
    if quantize != "int8":
        return "float32"
    return "uint8" if pixels else "int8"


def input_size_of(model, input_size=None):
    """The (height, width) to convert at: the model's own, or ``input_size`` where the model leaves it open.
    Only classifiers with one image input and one output: convert, eval and predict feed input 0 and read
    output 0, so any other model is refused here, before any work."""
    inputs, outputs = len(model.inputs), len(model.outputs)
    if (inputs, outputs) != (1, 1):
        raise ValueError(f"model {model.name!r} has {inputs} input{'s' * (inputs != 1)} and {outputs} "
                         f"output{'s' * (outputs != 1)}; convert, eval and predict take classifiers with one "
                         "image input and one output")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"expected a model taking RGB images (batch, height, width, 3), got input shape {shape}")
    model_size = shape[1:3]
    if input_size is None:
        if None in model_size:
            raise ValueError(f"--input-size: the model's input {shape} has no fixed size; give one, e.g. 224")
        return tuple(model_size)
    input_size = check_input_size(input_size, "--input-size")
    for fixed, wanted in zip(model_size, input_size):
        if fixed is not None and fixed != wanted:
            raise ValueError(f"--input-size: the model is built for {model_size[0]}x{model_size[1]}, "
                             f"got {input_size[0]}x{input_size[1]}")
    return input_size


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
        converter.inference_input_type = converter.inference_output_type = io_dtype(io)


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


@dataclass(frozen=True)
class Export:
    """The SavedModel of the graph to convert (the export rewrites applied), made once per conversion and
    shared by the converter and the per-layer debugger."""
    directory: str
    rewrites: list  # the rewrites that applied
    seconds: float


class ConversionJob:
    """One conversion in stages that share their work: the constructor checks every option and loads every
    image set before any work (a bad --eval-images never leaves a written file); ``export`` saves the graph
    once; ``convert`` runs the TFLite converter on it; ``write`` audits, attaches the metadata and writes the
    file; ``per_layer`` runs TF's quantization debugger on the same export and images.

    ``model``: a Keras model or a ``convert.source.ModelSource`` (its transform prepares the images, its class
    names go into the file). ``out_path``: checked writable at once. ``verify``: also load the held-out images
    (``held_out``) that fidelity and per-layer errors are measured on. ``notes``: what the report should warn
    of before any work (an image set smaller than asked)."""

    def __init__(self, model, spec, out_path=None, show_progress=True, verify=False):
        if out_path is not None:
            check_writable(out_path, "--output")
        self.source = as_source(model)
        self.model, self.spec, self.out_path, self.show_progress = self.source.model, spec, out_path, show_progress
        self.pixels = takes_pixels(self.model)
        self.io = spec.io or default_io(spec.quantize, self.pixels)
        self.size = input_size_of(self.model, spec.input_size)
        if self.io == "uint8" and not self.pixels:
            raise ValueError("--io uint8: the model does not take raw [0, 255] pixels (its input is not normalized "
                             "inside, e.g. GhostNet(include_preprocessing=False)), so uint8 camera frames do not fit "
                             "its input range; use --io int8 or float32, or a model with include_preprocessing=True")
        self.labels = output_labels(self.model, spec.file.labels if spec.file.labels is not None else self.source.labels)
        self.transform = self.source.transform_for(self.size)
        self.held_out = self._images(spec.eval_images, spec.eval_count, "--eval-images", EVALUATION_SEED) if verify \
            else None
        self.calibration = (self._images(spec.calibration, spec.calibration_steps, "--calibration", CALIBRATION_SEED)
                            if spec.calibrated else None)
        self.notes = [note for note in (
            self.calibration and shortfall(self.calibration, spec.calibration_steps, "--calibration"),
            self.held_out and shortfall(self.held_out, spec.eval_count, "--eval-images")) if note]

    def _images(self, images, count, option, seed):
        return image_source(images, self.size, count, option, seed, self.show_progress, self.transform)

    def inputs(self, images):
        """Model inputs of an image set: what the Keras model and a float TFLite input take."""
        return model_inputs(images.images, self.pixels)

    @contextlib.contextmanager
    def export(self):
        names = rewrites.default_rewrites(self.spec.quantize) if self.spec.rewrite is None else self.spec.rewrite
        measured = self.calibration is not None and "equalize-ranges" in names  # the one rewrite that reads images
        calibration = self.inputs(self.calibration) if measured else None
        exported_model, applied = rewrites.apply(self.model, self.size, names, calibration)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ghostnet-export-") as directory:
            export_saved_model(exported_model, self.size, directory)
            yield Export(directory, applied, time.perf_counter() - start)

    def _converter(self, export, quantize, io, inputs):
        import tensorflow as tf

        def representative_dataset():
            for sample in progress(inputs, len(inputs), "calibrating", enabled=self.show_progress):
                yield [sample[None]]

        converter = tf.lite.TFLiteConverter.from_saved_model(export.directory)
        configure(converter, quantize, io, representative_dataset, self.spec.file.min_runtime)
        return converter

    def convert(self, export):
        """(content, details): the converted model in memory, calibrated on the job's calibration images."""
        spec = self.spec
        details = {"quantize": spec.quantize, "io": self.io, "input_size": self.size, "takes_pixels": self.pixels,
                   "calibration": None, "rewrites": export.rewrites, "keep_float": None}
        inputs = None
        if self.calibration is not None:
            inputs, anchored = calibration_inputs(self.calibration.images, self.pixels)
            details["calibration"] = {**self.calibration.describe(), "range_anchored": anchored}
        start = time.perf_counter()
        converter = self._converter(export, spec.quantize, self.io, inputs)
        converter._experimental_calibrate_only = spec.keep_float is not None  # calibrate here, quantize below
        try:
            with native_output_silenced():  # the converter prints its options and MLIR passes on fd 1/2
                content = converter.convert()
        except Exception as exc:  # ConverterError and friends carry an MLIR dump; reduce it to one line
            raise ValueError(_converter_error(exc)) from None
        if spec.keep_float is not None:
            content, details["keep_float"] = mixed.keep_float(content, self.io, spec.keep_float, self.model,
                                                              self.inputs(self.calibration), self.show_progress,
                                                              export.rewrites)
        seconds = time.perf_counter() - start
        details["seconds"] = {"export": round(export.seconds, 2), "convert": round(seconds, 2),
                              "total": round(export.seconds + seconds, 2)}
        return content, details

    def build(self, export):
        """Convert and attach the metadata, in memory: int8 files only if every op runs in int8 (ValueError naming
        the offenders otherwise), or every op but those ``keep_float`` chose; every file only if
        ``spec.file.min_runtime`` can load it. Returns a ``Conversion`` whose ``content`` is not written yet."""
        content, details = self.convert(export)
        kept = details["keep_float"]
        checked = audit(content, details["quantize"], kept["layers"] if kept else ())
        if checked["int8"] is not None and not checked["int8"]["ok"]:
            raise ValueError(int8_failure(checked["int8"]["offenders"]))
        options = self.spec.file
        check_min_runtime(content, options.min_runtime)
        info = metadata.model_info(self.model.name, self.spec.quantize, self.io, self.pixels, self.size,
                                   self.transform, self.labels, options.author, options.license)
        content = metadata.attach(content, info)
        written = metadata.read(content)
        written["labels"] = len(written["labels"]) if written["labels"] else None
        return Conversion(path=Path(self.out_path), size_bytes=len(content), audit=checked, metadata=written,
                          content=content, **details)

    def write(self, export):
        """``build``, then write ``out_path`` atomically. Returns the ``Conversion``."""
        conversion = self.build(export)
        publish({self.out_path: conversion.content})
        return conversion

    def per_layer(self, export):
        """Per-tensor int8 error on the held-out images, worst first (``convert.debugging``)."""
        inputs, _ = calibration_inputs(self.calibration.images, self.pixels)
        converter = self._converter(export, "int8", "float32", inputs)
        return debugging.per_layer_errors(converter, self.inputs(self.held_out))


def _write_bytes(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


def publish(contents):
    """Write ``{path: bytes}`` together: every file to a temporary beside its path first, then all renamed into
    place, so a failure (a full disk at the last file) leaves every path as it was. None paths are skipped."""
    with contextlib.ExitStack() as stack:
        for path, data in contents.items():
            if path is not None:
                _write_bytes(stack.enter_context(atomic_path(path)), data)


def convert_bytes(model, quantize="int8", io=None, calibration=None, calibration_steps=DEFAULT_CALIBRATION_STEPS,
                  input_size=None, show_progress=True, rewrite=None, keep_float=None,
                  min_runtime=DEFAULT_MIN_RUNTIME):
    """Convert to TFLite in memory, without metadata; returns (content, details). The options are those of
    ``ConversionSpec``."""
    spec = ConversionSpec(quantize, io, calibration, calibration_steps, input_size=input_size, rewrite=rewrite,
                          keep_float=keep_float, file=FileOptions(min_runtime=min_runtime))
    job = ConversionJob(model, spec, show_progress=show_progress)
    with job.export() as export:
        return job.convert(export)


def convert_model(model, out_path, quantize="int8", io=None, calibration=None,
                  calibration_steps=DEFAULT_CALIBRATION_STEPS, input_size=None, show_progress=True,
                  rewrite=None, keep_float=None, options=FileOptions()):
    """Convert a Keras model (or a ``ModelSource``) to a .tflite file with its TFLite metadata (labels,
    normalization, the evaluation transform) and audit it; returns a ``Conversion`` (``ConversionJob.write``).
    The options are those of ``ConversionSpec``."""
    spec = ConversionSpec(quantize, io, calibration, calibration_steps, input_size=input_size, rewrite=rewrite,
                          keep_float=keep_float, file=options)
    job = ConversionJob(model, spec, out_path, show_progress)
    with job.export() as export:
        return job.write(export)


def output_labels(model, labels=None):
    """The class names the file will carry, checked against the model's output before any work."""
    classes = model.outputs[0].shape[-1]
    labels = metadata.default_labels(classes, labels)
    if labels is not None and len(labels) != classes:
        raise ValueError(f"--labels: {len(labels)} class names for a model with {classes} outputs")
    return labels
