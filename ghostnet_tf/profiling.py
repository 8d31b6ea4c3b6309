"""Parameter and multiply-accumulate counts, per stage, as the paper and timm count them (conv + dense)."""
import math

import numpy as np
from keras import layers

from ghostnet_tf.layers import GhostModule


def _trainable(layer):
    return int(sum(np.prod(w.shape) for w in layer.trainable_weights))


def _conv_macs(out_shape, kernel_size, in_per_group, out_channels):
    return math.prod(out_shape[1:3]) * out_channels * math.prod(kernel_size) * in_per_group


def layer_macs(layer):
    """Multiply-accumulates of one call of ``layer`` (0 for layers without conv/dense work)."""
    if isinstance(layer, GhostModule):
        out = layer.output.shape
        primary = _conv_macs(out, layer.primary_conv.kernel_size, layer.input.shape[-1], layer.init_channels)
        cheap = _conv_macs(out, layer.cheap_operation.kernel_size, 1, layer.new_channels)
        return primary + cheap
    if isinstance(layer, layers.DepthwiseConv2D):
        return _conv_macs(layer.output.shape, layer.kernel_size, 1, layer.output.shape[-1])
    if isinstance(layer, layers.Conv2D):
        return _conv_macs(layer.output.shape, layer.kernel_size, layer.input.shape[-1], layer.filters)
    if isinstance(layer, layers.Dense):
        return layer.input.shape[-1] * layer.units
    return 0


def _stage_of(layer_name):
    """'blocks.6.3.ghost1' -> 'blocks.6'; stem and head layers group under 'stem' and 'head'."""
    parts = layer_name.split(".")
    if parts[0] == "blocks":
        return ".".join(parts[:2])
    if parts[0] in ("preprocessing", "conv_stem", "bn1", "act1"):
        return "stem"
    return "head"


def profile(model):
    """Trainable parameters, MACs and a per-stage table of a GhostNet built with static spatial sizes.

    Returns ``{"name", "input_shape", "params", "macs", "stages": [{"stage", "output_shape", "params",
    "macs"}, ...]}``; stages appear in network order.
    """
    if any(d is None for d in model.inputs[0].shape[1:]):
        raise ValueError(f"profile: model {model.name!r} has input shape {tuple(model.inputs[0].shape)}; "
                         "MACs need a fixed spatial size: build it with input_shape=(H, W, 3)")
    stages = {}
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        row = stages.setdefault(_stage_of(layer.name), {"params": 0, "macs": 0})
        row["params"] += _trainable(layer)
        row["macs"] += layer_macs(layer)
        row["output_shape"] = tuple(layer.output.shape[1:])
    table = [{"stage": k, **v} for k, v in stages.items()]
    return {
        "name": model.name,
        "input_shape": tuple(model.inputs[0].shape[1:]),
        "params": sum(r["params"] for r in table),
        "macs": sum(r["macs"] for r in table),
        "stages": table,
    }


def format_profile(info):
    """The profile as a fixed-width text table."""
    lines = [f"{info['name']}  input {info['input_shape']}",
             f"{'stage':<10} {'output shape':<18} {'params':>12} {'MACs':>14}"]
    for row in info["stages"]:
        lines.append(f"{row['stage']:<10} {str(row['output_shape']):<18} {row['params']:>12,} {row['macs']:>14,}")
    lines.append(f"{'total':<10} {'':<18} {info['params']:>12,} {info['macs']:>14,}")
    lines.append(f"trainable params {info['params'] / 1e6:.3f} M, MACs {info['macs'] / 1e6:.1f} M")
    return "\n".join(lines)
