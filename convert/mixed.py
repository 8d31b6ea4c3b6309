"""Selective mixed precision: an int8 model in which a few ops stay float (``ghostnet convert --keep-float``).

The converter's own two steps, run apart: TFLiteConverter calibrates once (its calibrate-only mode), then
TensorFlow's MLIR quantizer quantizes the calibrated model with ``denylisted_nodes`` for the ops kept in
float (a DEQUANTIZE before each, a QUANTIZE after). With nothing kept, the result runs exactly like the
converter's int8 file. ``auto`` measures each op's sensitivity (the output SQNR gained when that op alone
stays float) and keeps the most sensitive ops, one at a time, until the model's top-1 agreement with the
Keras float model reaches the target; the search runs on the calibration images, so the report's fidelity,
measured on held-out images, stays honest.
"""
from dataclasses import dataclass

import numpy as np

from convert.verify import Graph, layer_of, layers_of

DEFAULT_TARGET_AGREEMENT = 99.0
MAX_AUTO_OPS = 16  # auto gives up (and says so) past this many float ops
SEARCH_IMAGES = 64  # images for the per-op sensitivity ranking (all calibration images for the agreement)
# Ops that compute nothing a float copy would improve.
NOT_CANDIDATES = ("PAD", "RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class KeepFloat:
    """What to keep in float: the named layers/ops, or ``auto`` until ``target_agreement`` (%) is reached."""
    names: tuple = ()
    auto: bool = False
    target_agreement: float = DEFAULT_TARGET_AGREEMENT


def parse_keep_float(text, target_agreement=None):
    """``--keep-float auto|NAME,...`` (and ``--target-agreement``) -> KeepFloat, or None for plain int8."""
    if text is None:
        if target_agreement is not None:
            raise ValueError("--target-agreement: only with --keep-float auto")
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError("--keep-float: expected 'auto' or layer names, e.g. blocks.3.0.se.conv_reduce")
    if names == ("auto",):
        target = DEFAULT_TARGET_AGREEMENT if target_agreement is None else target_agreement
        if not 0.0 < target <= 100.0:
            raise ValueError(f"--target-agreement: expected a percentage in (0, 100], got {target:g}")
        return KeepFloat(auto=True, target_agreement=float(target))
    if "auto" in names:
        raise ValueError("--keep-float: 'auto' cannot be mixed with layer names")
    if target_agreement is not None:
        raise ValueError("--target-agreement: only with --keep-float auto")
    return KeepFloat(names=names)


def _belongs(tensor_name, name):
    """True if the op of ``tensor_name`` is in layer ``name`` or under it (``blocks.3`` covers blocks.3.*)."""
    return tensor_name == name or any(layer == name or layer.startswith(name + ".") for layer in layers_of(tensor_name))


def candidates(calibrated):
    """[(op name, output tensor name)] of the calibrated float model's ops that could stay float."""
    graph = Graph(calibrated)
    return [(op["op_name"], graph.name(op["outputs"][0])) for op in graph.ops if op["op_name"] not in NOT_CANDIDATES]


def select(calibrated, names, rewrites=()):
    """The output tensor names of the ops in the named layers; a name that matches nothing is an error, which
    names the export rewrite (of ``rewrites``, those applied) that replaced the layer, if one did."""
    from convert.rewrites import replaced_by

    ops = candidates(calibrated)
    chosen = []
    for name in names:
        found = [tensor for _, tensor in ops if _belongs(tensor, name)]
        if not found:
            layers = list(dict.fromkeys(layer_of(tensor) for _, tensor in ops))
            replaced = replaced_by(name, rewrites, layers)
            if replaced:
                rewrite, made = replaced
                raise ValueError(f"--keep-float: {name!r} is not in the converted graph: the export rewrite "
                                 f"{rewrite} replaced it by {', '.join(made)}; give --keep-float {made[0]}, or "
                                 f"--rewrite without {rewrite} (e.g. --rewrite none) to keep {name!r} itself")
            raise ValueError(f"--keep-float: no op of the model is in {name!r}; its layers include "
                             f"{', '.join(layers[:8])}, ... (see --per-layer)")
        chosen += [t for t in found if t not in chosen]
    return chosen


def quantize(calibrated, io, keep=()):
    """Full-integer quantization of a calibrated model, the ops whose outputs are ``keep`` left in float."""
    from tensorflow.lite.python import convert as tf_convert

    from convert.spec import io_dtype
    from ghostnet_tf.quiet import native_output_silenced

    dtype = io_dtype(io)
    with native_output_silenced():  # the quantizer prints its options on fd 2
        return tf_convert.mlir_quantize(calibrated, disable_per_channel=False, input_data_type=dtype,
                                        output_data_type=dtype, denylisted_nodes=list(keep) or None)


def search(calibrated, io, inputs, reference, target_agreement, show_progress=True):
    """``--keep-float auto``: (tensor names to keep, the record of the search). ``inputs``/``reference``: search
    images in the model's float domain and the Keras float outputs on them."""
    from convert.inference import predict
    from convert.progress import progress
    from convert.verify import compare_outputs
    from ghostnet_tf.runtime import make_interpreter

    def run(keep, count=None):
        """Outputs of the model quantized with ``keep`` in float, on the first ``count`` search images."""
        content = quantize(calibrated, io, keep)
        return predict(make_interpreter(model_content=content, num_threads=2), inputs[:count])

    def score(outputs):
        figures = compare_outputs(reference[:len(outputs)], outputs)
        return figures["top1_agreement_pct"], figures["sqnr_db"] if figures["sqnr_db"] is not None else float("inf")

    int8 = run(())
    agreement, _ = score(int8)
    record = {"images": len(inputs), "target_agreement_pct": target_agreement, "int8_agreement_pct": agreement,
              "steps": [], "reached": agreement >= target_agreement}
    if record["reached"]:
        return [], record
    _, base_sqnr = score(int8[:SEARCH_IMAGES])
    gains = []
    ops = candidates(calibrated)
    for op, tensor in progress(ops, len(ops), "measuring op sensitivity", enabled=show_progress):
        gains.append((score(run((tensor,), SEARCH_IMAGES))[1] - base_sqnr, op, tensor))
    gains.sort(key=lambda g: -g[0])
    record["sensitivity"] = [{"op": op, "layer": layer_of(tensor), "sqnr_gain_db": round(gain, 3)}
                             for gain, op, tensor in gains[:MAX_AUTO_OPS]]
    keep = []
    for gain, op, tensor in gains[:MAX_AUTO_OPS]:
        keep.append(tensor)
        agreement, sqnr = score(run(keep))
        record["steps"].append({"op": op, "layer": layer_of(tensor), "tensor": tensor, "sqnr_gain_db": round(gain, 3),
                                "agreement_pct": agreement, "sqnr_db": round(sqnr, 3)})
        if agreement >= target_agreement:
            record["reached"] = True
            break
    return keep, record


def keep_float(calibrated, io, spec, model, inputs, show_progress=True, rewrites=()):
    """Quantize a calibrated model keeping ``spec``'s ops in float: (content, the report's ``keep_float``:
    the kept layers and why each is kept). ``model``/``inputs``: the Keras float model and the calibration
    images in its input domain (for auto); ``rewrites``: the export rewrites that applied."""
    record = None
    if spec.auto:
        reference = np.asarray(model.predict(inputs, batch_size=16, verbose=0), np.float64)
        keep, record = search(calibrated, io, inputs, reference, spec.target_agreement, show_progress)
        why = {step["layer"]: f"auto: +{step['sqnr_gain_db']:.2f} dB output SQNR when alone in float"
               for step in reversed(record["steps"])}
    else:
        keep = select(calibrated, spec.names, rewrites)
        why = {layer_of(t): "--keep-float " + next(n for n in spec.names if _belongs(t, n)) for t in keep}
    return quantize(calibrated, io, keep), {"mode": "auto" if spec.auto else "named",
                                            "requested": list(spec.names) or ["auto"], "layers": sorted(why),
                                            "why": why, "search": record}
