"""Running a converted model on float inputs, as the fidelity check and ``ghostnet eval`` need it."""
import numpy as np

from convert.progress import progress
from ghostnet_tf.runtime import quantization, quantize


def check_feed(interpreter, sample_shape=None, where="the .tflite model"):
    """Refuse, in one line, a model that ``predict`` would feed wrongly: other than one input and one output (it
    feeds input 0 and reads output 0), or an input of another shape than ``sample_shape`` (if given)."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if (len(inputs), len(outputs)) != (1, 1):
        raise ValueError(f"{where} has {len(inputs)} input{'s' * (len(inputs) != 1)} and {len(outputs)} "
                         f"output{'s' * (len(outputs) != 1)}; only classifiers with one image input and one output "
                         "can be run here")
    expected = tuple(int(s) for s in inputs[0]["shape"][1:])
    if sample_shape is not None and expected != tuple(sample_shape):
        raise ValueError(f"{where} takes inputs of shape {expected}, given {tuple(sample_shape)}")


def predict(interpreter, inputs, show_progress=False, label="running TFLite"):
    """Run a single-input model sample by sample on float inputs (the model's float domain):
    quantizes into int8/uint8 inputs and dequantizes outputs, so callers compare like with like."""
    check_feed(interpreter, np.shape(inputs)[1:])
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    in_dtype, out_dtype = np.dtype(input_detail["dtype"]), np.dtype(output_detail["dtype"])
    out_scale, out_zero = quantization(output_detail)
    outputs = []
    for x in progress(inputs, len(inputs), label, enabled=show_progress):
        x = np.asarray(x, np.float32)[None]
        interpreter.set_tensor(input_detail["index"], quantize(x, input_detail) if in_dtype.kind in "iu"
                               else x.astype(in_dtype))
        interpreter.invoke()
        y = interpreter.get_tensor(output_detail["index"])[0]
        if out_dtype.kind in "iu":
            y = (y.astype(np.float32) - out_zero) * out_scale
        outputs.append(y.astype(np.float32))
    return np.stack(outputs)
