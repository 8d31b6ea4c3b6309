"""Run a .tflite file with LiteRT's CompiledModel API (the one LiteRT's app samples use), in a process of its
own (its accelerator registry logs at exit): ``python compiled_model_run.py MODEL.tflite INPUTS.npy OUT.npy``.

INPUTS.npy: the input tensors (N, ...) in the model's input dtype; OUT.npy: the raw outputs (N, ...), written
with the signature list as OUT.npy.json."""
import json
import sys

import numpy as np
from ai_edge_litert.compiled_model import CompiledModel


def main(model_path, inputs, out):
    model = CompiledModel.from_file(model_path)
    input_buffers, output_buffers = model.create_input_buffers(0), model.create_output_buffers(0)
    output = model.get_output_tensor_details("serving_default")
    (name, detail), = output.items()
    count, dtype = int(np.prod(detail["shape"])), np.dtype(detail["dtype"])
    outputs = []
    for x in np.load(inputs):
        input_buffers[0].write(x[None])
        model.run_by_index(0, input_buffers, output_buffers)
        outputs.append(output_buffers[0].read(count, dtype).reshape(detail["shape"])[0])
    np.save(out, np.stack(outputs))
    with open(out + ".json", "w", encoding="utf-8") as handle:
        json.dump(model.get_signature_list(), handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
