"""Per-tensor int8 error with TensorFlow's QuantizationDebugger: its own converter set up the way the
converter sets one up, so a report can say which layer loses the accuracy."""
import csv
import io

import numpy as np

from ghostnet_tf.quiet import native_output_silenced


def per_layer_errors(converter, held_out):
    """Per-tensor int8 error from TF's QuantizationDebugger on the ``held_out`` model inputs, worst first.
    ``converter``: a TFLiteConverter configured for int8 with float I/O on the graph the file is made from
    (``ConversionJob.per_layer`` gives it the same export and calibration images).

    ``rmse_over_scale`` is the RMSE between float and int8 activations in units of the tensor's
    quantization step: about 0.29 (1/sqrt(12)) is pure rounding noise, well above 1 means trouble.
    """
    import tensorflow as tf

    with native_output_silenced():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([sample[None]] for sample in held_out))
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
