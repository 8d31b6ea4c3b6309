"""Run a .tflite file with the tflite-runtime wheel (2.14: older boards and apps), in its own venv (it needs
numpy < 2): ``python tflite_runtime_run.py MODEL.tflite INPUTS.npy OUT.npy``.

INPUTS.npy: the input tensors (N, ...) already in the model's input dtype; OUT.npy: the raw outputs (N, ...),
or the process exits 3 with the runtime's message when it cannot load the file."""
import sys

import numpy as np
import tflite_runtime
from tflite_runtime.interpreter import Interpreter


def main(model, inputs, out):
    try:
        interpreter = Interpreter(model_path=model)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        print(f"tflite-runtime {tflite_runtime.__version__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        sys.exit(3)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for x in np.load(inputs):
        interpreter.set_tensor(source["index"], x[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0].copy())
    np.save(out, np.stack(outputs))


if __name__ == "__main__":
    main(*sys.argv[1:])
