"""Per-tensor int8 error with TensorFlow's QuantizationDebugger: its own converter set up the way the
converter sets one up, so a report can say which layer loses the accuracy."""
import csv
import io
import tempfile

import numpy as np

from convert import rewrites
from convert.calibration import CALIBRATION_SEED, EVALUATION_SEED, image_source, takes_pixels
from convert.converter import calibration_inputs, configure, export_saved_model
from convert.source import as_source
from ghostnet_tf.preprocessing import model_inputs
from ghostnet_tf.quiet import native_output_silenced


def per_layer_errors(model, input_size, calibration, calibration_steps, eval_images, eval_count,
                     show_progress=True, rewrite=None):
    """Per-tensor int8 error from TF's QuantizationDebugger on held-out images, worst first, on the graph the
    converter exports (the same ``rewrite`` names; None: int8's default set).

    ``rmse_over_scale`` is the RMSE between float and int8 activations in units of the tensor's
    quantization step: about 0.29 (1/sqrt(12)) is pure rounding noise, well above 1 means trouble.
    """
    import tensorflow as tf

    source = as_source(model)
    model = source.model
    pixels = takes_pixels(model)
    transform = source.transform_for(input_size)
    calibration_set = image_source(calibration, input_size, calibration_steps, "--calibration", CALIBRATION_SEED,
                                   show_progress, transform)
    inputs, _ = calibration_inputs(calibration_set.images, pixels)
    held_out = model_inputs(image_source(eval_images, input_size, eval_count, "--eval-images", EVALUATION_SEED,
                                         show_progress, transform).images, pixels)

    def dataset(samples):
        return lambda: ([sample[None]] for sample in samples)

    names = rewrites.default_rewrites("int8") if rewrite is None else rewrite
    exported, _ = rewrites.apply(model, input_size, names)
    with tempfile.TemporaryDirectory(prefix="ghostnet-debug-") as directory:
        export_saved_model(exported, input_size, directory)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        configure(converter, "int8", "float32", dataset(inputs))
        with native_output_silenced():
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                                 debug_dataset=dataset(held_out))
            debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"])
        rows.append({"op": row["op_name"], "tensor": row["tensor_name"],
                     "rmse_over_scale": float(np.sqrt(float(row["mean_squared_error"])) / scale) if scale else None,
                     "max_abs_error": float(row["max_abs_error"]), "scale": scale})
    return sorted(rows, key=lambda r: -(r["rmse_over_scale"] or 0.0))
