"""GhostNetV3's and RepGhostNet's re-parameterisation on state dicts (timm names and PyTorch layouts, numpy arrays).

A GhostNetV3 re-parameterisable conv ``<base>_rpr`` is a sum of branches, each linear in the input and all with
the same stride and groups: ``<base>_rpr_conv.{i}`` (k x k conv + BN), ``<base>_rpr_scale`` (1 x 1 conv + BN)
and ``<base>_rpr_skip`` (BN alone, the identity). A RepGhost module's cheap operation is ``cheap_operation.0/.1``
(3x3 depthwise conv + BN) plus ``fusion_bn.0`` (BN alone, the identity). Each sum is one k x k conv with a bias,
named as timm's ``switch_to_deploy`` names it. Pure numpy, so loading and `reparameterize` share it.
"""
import re

import numpy as np

from ghostnet_tf.layers import BN_EPSILON

# <base> -> the folded conv, relative to the module that holds the branches
FOLDED = {"primary": "primary_conv.0", "cheap": "cheap_operation.0", "dw": "conv_dw"}
_BRANCHED = re.compile(r"^(.*)\.(primary|cheap|dw)_rpr_conv\.0\.conv\.weight$")
_FUSION = re.compile(r"^(.*)\.fusion_bn\.0\.weight$")  # a RepGhost module
_BN = ("weight", "bias", "running_mean", "running_var")


def has_branches(keys):
    """Whether state-dict `keys` hold training-form branches (GhostNetV3's or RepGhostNet's)."""
    return any("_rpr_" in key or ".fusion_bn." in key for key in keys)


def _fuse(state, kernel, bn):
    """(kernel, bias) of conv `kernel` followed by the BatchNorm with key prefix `bn`, in eval mode."""
    missing = [f"{bn}.{p}" for p in _BN if f"{bn}.{p}" not in state]
    if missing:
        raise ValueError(f"`weights`: a re-parameterisable branch is incomplete: no {missing[0]}")
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
    """The state dict with every branched conv (GhostNetV3) and every RepGhost cheap operation with its identity
    branch replaced by its single folded conv (weight and bias)."""
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
        _replace(state, (f"{prefix}_",), f"{module}.{FOLDED[base]}", branches)
    for key in sorted(k for k in state if _FUSION.match(k)):
        module = _FUSION.match(key).group(1)
        cheap = f"{module}.cheap_operation"
        if f"{cheap}.0.weight" not in state:
            raise ValueError(f"`weights`: a re-parameterisable branch is incomplete: no {cheap}.0.weight")
        kernel = state[f"{cheap}.0.weight"]
        branches = [_fuse(state, kernel, f"{cheap}.1"), _fuse(state, _identity(kernel.shape), f"{module}.fusion_bn.0")]
        _replace(state, (f"{cheap}.", f"{module}.fusion_bn."), cheap, branches)
    return state


def _replace(state, prefixes, target, branches):
    """Drop the keys under `prefixes` from `state` and set `target` to the sum of the (kernel, bias) `branches`."""
    for old in [k for k in state if k.startswith(prefixes)]:
        del state[old]
    state[f"{target}.weight"] = sum(k for k, _ in branches).astype(np.float32)
    state[f"{target}.bias"] = sum(b for _, b in branches).astype(np.float32)
