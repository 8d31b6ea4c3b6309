"""What a converted model really is: op histogram, the all-int8 audit, graph hygiene, the XNNPACK
partitions, and the fidelity of its outputs against the Keras float model. Read with the builtin kernels
only (no XNNPACK), so the op list is the graph itself and not one delegate node; the partitions come from a
second, delegated interpreter."""
import re
from collections import Counter

import numpy as np

from convert.inference import predict
from convert.opversions import min_runtime_version, op_versions
from ghostnet_tf.runtime import make_interpreter, quantization

EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")
AFFINE_OPS = ("MUL", "ADD", "SUB")
ACTIVATION_OPS = ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1")
# Ops that carry a fused activation: a separate ReLU after them is a missed fusion.
FUSABLE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL")
SLICE_OPS = ("SLICE", "STRIDED_SLICE")
# int8 activations and weights; int32 biases and shape/axis/padding operands.
INT8_GRAPH_DTYPES = ("int8", "int32", "int64")
SUFFIX = re.compile(r"_\d+$")  # the name-scope suffix the SavedModel trace adds to every layer name


class Graph:
    """The ops and tensors of a .tflite model, with who produces and who consumes each tensor."""

    def __init__(self, content):
        self.interpreter = make_interpreter(model_content=content, use_xnnpack=False)
        self.ops = self.interpreter._get_ops_details()
        self.tensors = {t["index"]: t for t in self.interpreter.get_tensor_details()}
        self.inputs = [d["index"] for d in self.interpreter.get_input_details()]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]
        self.producer, self.consumers = {}, {}
        for op in self.ops:
            for t in op["outputs"]:
                self.producer[t] = op
            for t in op["inputs"]:
                if t >= 0:
                    self.consumers.setdefault(t, []).append(op)

    def name(self, index):
        return self.tensors[index]["name"]

    def dtype(self, index):
        return np.dtype(self.tensors[index]["dtype"]).name

    def shape(self, index):
        return tuple(int(s) for s in self.tensors[index]["shape"])

    def is_constant(self, index):
        """Weights: produced by no op (or by DEQUANTIZE of weights, as float16 models store them)."""
        op = self.producer.get(index)
        if op is None:
            return index not in self.inputs
        return op["op_name"] == "DEQUANTIZE" and all(self.is_constant(t) for t in op["inputs"] if t >= 0)

    def is_edge(self, op):
        """QUANTIZE/DEQUANTIZE converting a graph input or output (--io uint8/float32), not inside the graph."""
        return op["op_name"] in EDGE_OPS and (
            any(t in self.inputs for t in op["inputs"]) or any(t in self.outputs for t in op["outputs"]))

    def io_detail(self, detail):
        scale, zero_point = quantization(detail)
        return {"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
                "shape": [int(s) for s in detail["shape"]],
                "scale": scale if scale else None, "zero_point": zero_point if scale else None}


def op_histogram(graph):
    return dict(Counter(op["op_name"] for op in graph.ops).most_common())


def int8_offenders(graph):
    """Ops that are not pure int8: a float/uint8/int16 tensor in or out, or a (DE)QUANTIZE inside the graph.
    The edge (DE)QUANTIZE of --io uint8/float32 is allowed; only its graph-side tensor is checked."""
    offenders = []
    for op in graph.ops:
        edge = graph.is_edge(op)
        if op["op_name"] in EDGE_OPS and not edge:
            offenders.append(_offender(graph, op, op["outputs"][0], f"{op['op_name']} inside the graph"))
            continue
        for index in [t for t in op["inputs"] if t >= 0] + list(op["outputs"]):
            if edge and (index in graph.inputs or index in graph.outputs):
                continue
            if graph.dtype(index) not in INT8_GRAPH_DTYPES:
                offenders.append(_offender(graph, op, index, f"{graph.dtype(index)} tensor"))
    return offenders


def _offender(graph, op, index, reason):
    return {"op": op["op_name"], "op_index": op["index"], "tensor": graph.name(index),
            "dtype": graph.dtype(index), "reason": reason}


def _affine_with_vector(graph, op):
    """The non-constant operand of a MUL/ADD/SUB by a per-channel constant vector, else None."""
    if op["op_name"] not in AFFINE_OPS:
        return None
    inputs = [t for t in op["inputs"] if t >= 0]
    constants = [t for t in inputs if graph.is_constant(t)]
    variables = [t for t in inputs if not graph.is_constant(t)]
    if len(constants) == 1 and len(variables) == 1 and int(np.prod(graph.shape(constants[0]))) > 1:
        return variables[0]
    return None


def _from_graph_input(graph, index):
    """True for the graph input itself or its edge QUANTIZE: the input normalization lives there."""
    op = graph.producer.get(index)
    return index in graph.inputs or (op is not None and graph.is_edge(op) and
                                     any(t in graph.inputs for t in op["inputs"]))


def hygiene(graph):
    """Graph hygiene: BN folded into convs, activations fused, no slice that keeps everything."""
    unfolded, unfused, noop_slices = [], [], []
    for op in graph.ops:
        name = op["op_name"]
        operand = _affine_with_vector(graph, op)
        before = graph.producer.get(operand) if operand is not None else None
        first_operand = _affine_with_vector(graph, before) if before is not None else None
        # A pair of per-channel affine ops is an unfolded BN, unless it normalizes the graph input.
        if first_operand is not None and not _from_graph_input(graph, first_operand) \
                and len(graph.consumers[operand]) == 1:
            unfolded.append({"ops": f"{before['op_name']}+{name}", "tensor": graph.name(op["outputs"][0])})
        if name in ACTIVATION_OPS:
            source = op["inputs"][0]
            before = graph.producer.get(source)
            if before is not None and before["op_name"] in FUSABLE_OPS and len(graph.consumers[source]) == 1:
                unfused.append({"ops": f"{before['op_name']}+{name}", "tensor": graph.name(op["outputs"][0])})
        if name in SLICE_OPS and graph.shape(op["inputs"][0]) == graph.shape(op["outputs"][0]):
            noop_slices.append({"ops": name, "tensor": graph.name(op["outputs"][0])})
    checks = {"bn_folded": unfolded, "activations_fused": unfused, "no_noop_slices": noop_slices}
    return {check: {"ok": not found, "offenders": found} for check, found in checks.items()}


def layers_of(tensor_name):
    """The Keras layers named in an op's (fused, ';'-joined) output tensor name, one per fused part."""
    parts = [part.split("/") for part in tensor_name.split(";")]
    return [SUFFIX.sub("", components[1]) for components in parts if len(components) > 1]


def layer_of(tensor_name):
    """The Keras layer an op belongs to: the most frequent among its fused parts, e.g.
    ``blocks.3.0.se.conv_reduce`` for its conv + bias + ReLU (the tensor name itself if it names none)."""
    layers = layers_of(tensor_name)
    return Counter(layers).most_common(1)[0][0] if layers else tensor_name


def split_kept(graph, offenders, kept_layers):
    """(offenders, kept): the offenders that belong to ops kept in float on purpose (``kept_layers``, see
    convert.mixed), to float ops fed only by those (the quantizer leaves e.g. a SOFTMAX after a kept layer in
    float) or to the QUANTIZE/DEQUANTIZE around them move to ``kept``, one entry per float op."""
    float_ops = {o["op_index"] for o in offenders}
    kept = {}
    for op in graph.ops:  # in execution order, so a kept op is known before its consumers
        if op["op_name"] in EDGE_OPS or op["index"] not in float_ops:
            continue
        layer = layer_of(graph.name(op["outputs"][0]))
        sources = [graph.producer.get(t) for t in op["inputs"]
                   if t >= 0 and not graph.is_constant(t) and graph.dtype(t) == "float32"]
        follows = bool(sources) and all(s is not None and s["index"] in kept for s in sources)
        if layer in kept_layers or follows:
            kept[op["index"]] = {"op": op["op_name"], "op_index": op["index"], "layer": layer,
                                 "follows_kept_op": layer not in kept_layers}

    def bridges(op):  # a (DE)QUANTIZE feeding or fed by a kept op
        neighbours = [graph.producer.get(t) for t in op["inputs"] if t >= 0]
        neighbours += [c for t in op["outputs"] for c in graph.consumers.get(t, [])]
        return op["op_name"] in EDGE_OPS and any(n is not None and n["index"] in kept for n in neighbours)

    remaining = [o for o in offenders if o["op_index"] not in kept and not bridges(graph.ops[o["op_index"]])]
    return remaining, list(kept.values())


def xnnpack_partitions(content):
    """How XNNPACK takes the model: its partitions (delegate nodes), the ops inside them and the ops it
    left to the builtin kernels. Each op left out between two partitions splits the graph (a tensor leaves
    the delegate and comes back); at the edges (an input QUANTIZE, an int8 SOFTMAX) it only costs itself."""
    interpreter = make_interpreter(model_content=content, num_threads=1)
    ops = interpreter._get_ops_details()  # the model's ops, then one DELEGATE node per partition
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {t: op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    inside = set()
    for delegate in delegates:  # a partition: the ops between the delegate node's inputs and its outputs
        bounds, todo = set(delegate["inputs"]), list(delegate["outputs"])
        while todo:
            op = producer.get(todo.pop())
            if op is not None and op["index"] not in inside:
                inside.add(op["index"])
                todo += [t for t in op["inputs"] if t >= 0 and t not in bounds]
    left = [op["op_name"] for op in ops if op["op_name"] != "DELEGATE" and op["index"] not in inside]
    return {"partitions": len(delegates), "delegated_ops": len(inside), "ops": len(inside) + len(left),
            "not_delegated": dict(Counter(left).most_common())}


def audit(content, quantize, kept_layers=()):
    """Op histogram, input/output quantization, hygiene and (for int8) the all-int8 audit of a model;
    ``kept_layers``: the layers whose ops were kept in float on purpose (``--keep-float``)."""
    graph = Graph(content)
    result = {
        "op_count": len(graph.ops),
        "ops": op_histogram(graph),
        "input": graph.io_detail(graph.interpreter.get_input_details()[0]),
        "output": graph.io_detail(graph.interpreter.get_output_details()[0]),
        "hygiene": hygiene(graph),
        "xnnpack": xnnpack_partitions(content),
        "int8": None,
        "op_versions": op_versions(content),
        "min_runtime_version": min_runtime_version(content),
    }
    if quantize == "int8":
        offenders, kept = split_kept(graph, int8_offenders(graph), set(kept_layers))
        result["int8"] = {"ok": not offenders, "offenders": offenders, "kept_float": kept}
    return result


def fidelity(content, keras_model, inputs, show_progress=True):
    """Converted vs Keras float outputs on the same inputs (the model's float domain)."""
    reference = np.asarray(keras_model.predict(inputs, batch_size=16, verbose=0), np.float64)
    interpreter = make_interpreter(model_content=content, num_threads=2)
    converted = predict(interpreter, inputs, show_progress, "comparing with Keras")
    return compare_outputs(reference, converted)


def compare_outputs(reference, converted):
    """Fidelity figures of converted outputs against the float model's, (N, ...) each."""
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    converted = np.asarray(converted, np.float64).reshape(len(converted), -1)
    error = converted - reference
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(converted, axis=1)
    cosine = np.sum(reference * converted, axis=1) / np.maximum(norms, 1e-30)
    noise = float(np.sum(error ** 2))
    return {
        "images": len(reference),
        "top1_agreement_pct": float(100.0 * np.mean(reference.argmax(1) == converted.argmax(1))),
        "cosine_mean": float(cosine.mean()),
        "max_abs_error": float(np.abs(error).max()),
        # Signal-to-quantization-noise ratio; null when the outputs are identical (infinite).
        "sqnr_db": float(10 * np.log10(np.sum(reference ** 2) / noise)) if noise > 0 else None,
        # Mean top output of the float model: near 1/classes means untrained, near-uniform outputs.
        "reference_peak_mean": float(reference.max(1).mean()),
        "classes": int(reference.shape[1]),
    }

