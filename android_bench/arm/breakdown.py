"""Where a model's ARM instructions go: ``ghostnet bench arm --per-block``.

XNNPACK runs the whole graph as one delegate node, so nothing inside an invoke says which op is running.
Instead the file is cut: prefix k keeps the first k ops (execution order) and returns every tensor they
produce that a later op needs. Each prefix is counted in one emulated process; op k costs count(k) -
count(k-1). The same quantized ops run as in the full file, so the op costs add up exactly to its count.
XNNPACK fuses a PAD into the convolution that reads it, so no cut is made between the two: the pair's
cost is the convolution's, and the PAD shows 0 (a cut there would pay for a padded copy the model never makes).
"""
import os
import re
import tempfile
from collections import defaultdict

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
# Block of an op, from the Keras layer in its output tensor's name (model/layer/...): the first rule that
# matches the layer. Ops whose layer names no block (activations, anonymous layers) join their input's block.
BLOCK_RULES = (
    (re.compile(r"^(preprocessing|normalization|rescaling)"), "input normalization"),
    (re.compile(r"^blocks\.(\d+)\.(\d+)"), r"blocks.\1.\2"),  # GhostNet (timm names)
    (re.compile(r"^(conv_stem|bn1|act1)"), "stem"),
    (re.compile(r"^(conv_head|act2|global_pool|flatten|classifier)"), "head"),
    (re.compile(r"^(expanded_conv(_\d+)?)_"), r"\1"),  # MobileNetV3 (keras.applications)
    (re.compile(r"^(block_\d+)_"), r"\1"),  # MobileNetV2
    (re.compile(r"^(conv|conv_bn|bn_conv1|conv1|conv1_bn|conv1_relu)(_\d+)?$"), "stem"),
    (re.compile(r"^(conv_1|conv_2|conv_1_bn|out_relu|logits|predictions|global_average_pooling2d|dropout)"), "head"),
)


class Model:
    """A single-subgraph .tflite file without float16 weights, opened once, cut many times."""

    def __init__(self, path):
        with open(path, "rb") as handle:
            self.model = schema.ModelT.InitFromPackedBuf(bytearray(handle.read()), 0)
        if len(self.model.subgraphs) != 1:
            raise ValueError(f"{path}: --per-block needs a model with one subgraph, this one has "
                             f"{len(self.model.subgraphs)}")
        self.graph = self.model.subgraphs[0]
        self.ops = list(self.graph.operators)
        if any(t.type == schema.TensorType.FLOAT16 for t in self.graph.tensors):
            # Its weights are DEQUANTIZEd to float32 at load; a cut after one returns a constant, which
            # XNNPACK refuses to run.
            raise ValueError(f"{path}: --per-block needs an int8 or float32 file, and this one has float16 "
                             "weights; count it without --per-block")

    def op_type(self, op):
        code = self.model.operatorCodes[op.opcodeIndex]
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        return OP_NAMES.get(number, f"OP_{number}") if number != schema.BuiltinOperator.CUSTOM else \
            f"CUSTOM:{code.customCode.decode()}"

    def tensor(self, index):
        return self.graph.tensors[index]

    def cut(self, count):
        """The bytes of a model made of the first ``count`` ops, returning all their live tensors."""
        graph, model = self.graph, self.model
        kept, rest = self.ops[:count], self.ops[count:]
        needed_later = {t for op in rest for t in op.inputs} | {int(t) for t in graph.outputs}
        frontier = [t for op in kept for t in op.outputs if t in needed_later]
        used = {t for op in kept for t in (*op.inputs, *op.outputs) if t >= 0} | {int(t) for t in graph.inputs}
        used_buffers = {graph.tensors[t].buffer for t in used}
        saved = (graph.operators, graph.outputs, [(b.data, i) for i, b in enumerate(model.buffers)])
        try:
            graph.operators, graph.outputs = kept, np.array(list(dict.fromkeys(frontier)), dtype=np.int32)
            for index, buffer in enumerate(model.buffers):
                if index not in used_buffers:
                    buffer.data = None
            builder = flatbuffers.Builder(1 << 20)
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            return bytes(builder.Output())
        finally:
            graph.operators, graph.outputs = saved[0], saved[1]
            for data, index in saved[2]:
                model.buffers[index].data = data

    def describe(self):
        """Per op: its type, its block (from the layer names) and its output's resolution."""
        rows, block_of_tensor = [], {}
        for index, op in enumerate(self.ops):
            out = self.tensor(op.outputs[0])
            layers = [_layer(part) for part in out.name.decode(errors="replace").split(";")]
            block = next((match.expand(name) for layer in layers for rule, name in BLOCK_RULES
                          if (match := rule.search(layer))), None)
            if block is None:
                block = next((block_of_tensor[t] for t in op.inputs if t in block_of_tensor), layers[0] or "?")
            for t in op.outputs:
                block_of_tensor[t] = block
            shape = [int(d) for d in out.shape]
            rows.append({"index": index, "op": self.op_type(op), "block": block,
                         "resolution": f"{shape[1]}x{shape[2]}" if len(shape) == 4 else "vector"})
        return rows


def _layer(tensor_name):
    """'ghostnet_100_1/blocks.0.0.ghost1_1/Relu' -> 'blocks.0.0.ghost1_1'."""
    parts = tensor_name.split("/")
    return parts[1] if len(parts) > 2 else parts[0]


def cut_points(rows):
    """Prefix lengths to count: after every op but a PAD (fused into its consumer)."""
    return [row["index"] + 1 for row in rows if row["op"] != "PAD"]


def attribute(rows, counts):
    """Each op's instructions and dot-product instructions: the count of its prefix minus the one before
    (``counts`` follow ``cut_points(rows)``; a PAD gets 0, its cost is in the op after it)."""
    previous = {"per_inference": 0, "dot_product_per_inference": 0}
    by_length = dict(zip(cut_points(rows), counts))
    for row in rows:
        count = by_length.get(row["index"] + 1)
        if count is None:
            row["instructions"] = row["dot_product"] = 0
            continue
        row["instructions"] = count["per_inference"] - previous["per_inference"]
        row["dot_product"] = count["dot_product_per_inference"] - previous["dot_product_per_inference"]
        previous = count
    return rows


def summarize(rows):
    """{"by_block", "by_op", "by_resolution"}: instructions summed over the ops, in first-seen order."""
    out = {}
    for key in ("block", "op", "resolution"):
        sums = defaultdict(int)
        for row in rows:
            sums[row[key]] += row["instructions"]
        out[f"by_{key}"] = dict(sums)
    return out


def format_table(result, title):
    """The breakdown as text: per block (with its output resolution and op types), then per op type."""
    total = sum(result["by_block"].values()) or 1
    blocks = defaultdict(lambda: {"ops": defaultdict(int), "dot": 0})
    for row in result["ops"]:
        block = blocks[row["block"]]
        block["ops"][row["op"]] += row["instructions"]
        block["dot"] += row["dot_product"]
        block["resolution"] = row["resolution"]
    lines = [f"{title}: {total / 1e6:.2f} M instructions per inference", "",
             f"{'block':<22}{'out':>10}{'M instr':>10}{'share':>8}{'dot (M)':>9}  op types (M)"]
    for name, cost in result["by_block"].items():
        block = blocks[name]
        ops = ", ".join(f"{op} {value / 1e6:.2f}" for op, value in
                        sorted(block["ops"].items(), key=lambda kv: -kv[1]) if value)
        lines.append(f"{name:<22}{block['resolution']:>10}{cost / 1e6:>10.2f}{100 * cost / total:>7.1f}%"
                     f"{block['dot'] / 1e6:>9.2f}  {ops}")
    lines += ["", f"{'op type':<22}{'M instr':>10}{'share':>8}"]
    for op, cost in sorted(result["by_op"].items(), key=lambda kv: -kv[1]):
        if cost:
            lines.append(f"{op:<22}{cost / 1e6:>10.2f}{100 * cost / total:>7.1f}%")
    lines += ["", f"{'output resolution':<22}{'M instr':>10}{'share':>8}"]
    for resolution, cost in result["by_resolution"].items():
        if cost:
            lines.append(f"{resolution:<22}{cost / 1e6:>10.2f}{100 * cost / total:>7.1f}%")
    if result["by_op"].get("PAD") == 0:
        lines += ["", "(PADs are counted in the convolutions XNNPACK fuses them into)"]
    return "\n".join(lines)


def per_op(model_path, count_models, log=None):
    """The per-op, per-block, per-op-type and per-resolution instruction counts of ``model_path``.
    ``count_models(paths)`` counts a list of .tflite files (on one emulated core) and returns their counts."""
    model = Model(model_path)
    rows = model.describe()
    with tempfile.TemporaryDirectory(prefix="ghostnet-cuts-") as tmp:
        paths = []
        for length in cut_points(rows):
            paths.append(os.path.join(tmp, f"cut{length:04d}.tflite"))
            with open(paths[-1], "wb") as handle:
                handle.write(model.cut(length))
        if log:
            log(f"breakdown: counting {len(paths)} cut models of {os.path.basename(model_path)} in one process")
        counts = count_models(paths)
    return {"ops": attribute(rows, counts), **summarize(rows)}


