"""GhostNetV3's re-parameterisation on state dicts (timm names and PyTorch layouts, numpy arrays).

A re-parameterisable conv ``<base>_rpr`` is a sum of branches, each linear in the input and all with the
same stride and groups: ``<base>_rpr_conv.{i}`` (k x k conv + BN), ``<base>_rpr_scale`` (1 x 1 conv + BN)
and ``<base>_rpr_skip`` (BN alone, the identity). Their sum is one k x k conv with a bias, named as timm's
``switch_to_deploy`` names it. Pure numpy, so loading and `reparameterize` share it.
"""
import re

import numpy as np

from ghostnet_tf.layers import BN_EPSILON

# <base> -> the folded conv, relative to the module that holds the branches
FOLDED = {"primary": "primary_conv.0", "cheap": "cheap_operation.0", "dw": "conv_dw"}
_BRANCHED = re.compile(r"^(.*)\.(primary|cheap|dw)_rpr_conv\.0\.conv\.weight$")
_BN = ("weight", "bias", "running_mean", "running_var")


def has_branches(keys):
    """Whether state-dict `keys` hold GhostNetV3's training-form branches."""
    return any("_rpr_" in key for key in keys)


def _fuse(state, kernel, bn):
    """(kernel, bias) of conv `kernel` followed by the BatchNorm with key prefix `bn`, in eval mode."""
    missing = [f"{bn}.{p}" for p in _BN if f"{bn}.{p}" not in state]
    if missing:
        raise ValueError(f"`weights`: a GhostNetV3 branch is incomplete: no {missing[0]}")
    gamma, beta, mean, var = (np.asarray(state[f"{bn}.{p}"], np.float64) for p in _BN)
    scale = gamma / np.sqrt(var + BN_EPSILON)  # float64: the sum of the branches then rounds only once
    return kernel * scale[:, None, None, None], beta - mean * scale


def _identity(shape):
    """The k x k kernel (`shape` = [out, in / groups, k, k]) that passes every channel through."""
    out, per_group, k, _ = shape
    kernel = np.zeros(shape, np.float32)
    kernel[np.arange(out), np.arange(out) % per_group, k // 2, k // 2] = 1
    return kernel


def fold_state_dict(state):
    """The state dict with every branched conv replaced by its single folded conv (weight and bias)."""
    state = dict(state)
    for key in sorted(k for k in state if _BRANCHED.match(k)):
        module, base = _BRANCHED.match(key).groups()
        prefix = f"{module}.{base}_rpr"
        shape = state[key].shape
        branches = []
        index = 0
        while f"{prefix}_conv.{index}.conv.weight" in state:
            branch = f"{prefix}_conv.{index}"
            branches.append(_fuse(state, state[f"{branch}.conv.weight"], f"{branch}.bn1"))
            index += 1
        if f"{prefix}_scale.conv.weight" in state:
            pad = shape[-1] // 2
            kernel = np.pad(state[f"{prefix}_scale.conv.weight"], ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            branches.append(_fuse(state, kernel, f"{prefix}_scale.bn1"))
        if f"{prefix}_skip.weight" in state:
            branches.append(_fuse(state, _identity(shape), f"{prefix}_skip"))
        for old in [k for k in state if k.startswith(f"{prefix}_")]:
            del state[old]
        target = f"{module}.{FOLDED[base]}"
        state[f"{target}.weight"] = sum(k for k, _ in branches).astype(np.float32)
        state[f"{target}.bias"] = sum(b for _, b in branches).astype(np.float32)
    return state
