"""GhostNetV2 (Tang et al., arXiv 2211.12905) and GhostNetV3 (Liu et al., arXiv 2404.11202), exact to timm's
``ghostnetv2_*`` / ``ghostnetv3_*``: GhostNet's network with DFC attention in the first Ghost module of every
bottleneck but the first two, and (V3) every conv of the Ghost modules and strided depthwise convs trained as
a sum of re-parameterisable branches, folded into one conv for inference (`reparameterize`).
"""
import functools
import math

from keras import layers

from ghostnet_tf.blocks import conv_bn, depthwise_bn, ghost_bottleneck, ghost_module
from ghostnet_tf.dfc import dfc_attention
from ghostnet_tf.layers import batch_norm, symmetric_pad
from ghostnet_tf.model import GhostNet, build_ghostnet
from ghostnet_tf.registry import BUILDER_NAMES, get_entry
from ghostnet_tf.reparam import FOLDED, fold_state_dict, has_branches
from ghostnet_tf.repghost import RepGhostNet
from ghostnet_tf.weights import assign_state_dict, infer_family, infer_width, state_dict_from_model

PLAIN_BLOCKS = 2  # the first two bottlenecks have no DFC attention (timm: layer_idx > 1)
BRANCHES = 3  # k x k conv + BN branches per re-parameterisable conv (timm's num_conv_branches)
MIN_INPUT_SIZE = 33  # the stride-32 map must be >= 2 pixels for the attention's 2x2 pool
CHEAP_KERNEL = 3  # the Ghost modules' depthwise "cheap operation"


def ghost_module_v2(x, filters, relu, name):
    """GhostNetV2's Ghost module: the V1 module (same layers, same names) gated by DFC attention."""
    return dfc_attention(x, ghost_module(x, filters, relu, name), name)


def rep_conv(x, filters, kernel_size, strides, name, base, folded, scale=False, skip=False):
    """A re-parameterisable conv of module `name`, depthwise when `filters` is None. Training form:
    the sum of `BRANCHES` k x k conv+BN branches ``<name>.<base>_rpr_conv.{i}``, [a 1 x 1 conv+BN
    ``_rpr_scale``], [a BN of the input ``_rpr_skip``]; folded: one conv with bias, as timm names it."""
    def conv(kernel, strides, use_bias, conv_name):
        if filters is None:
            return layers.DepthwiseConv2D(kernel, strides=strides, use_bias=use_bias, name=conv_name)
        return layers.Conv2D(filters, kernel, strides=strides, use_bias=use_bias, name=conv_name)

    if folded:
        target = f"{name}.{FOLDED[base]}"
        pad = symmetric_pad(kernel_size, f"{target}.pad")
        return conv(kernel_size, strides, True, target)(x if pad is None else pad(x))
    bn_conv = depthwise_bn if filters is None else functools.partial(conv_bn, filters=filters)
    prefix = f"{name}.{base}_rpr"
    sizes = [(f"{prefix}_conv.{i}", kernel_size) for i in range(BRANCHES)] + [(f"{prefix}_scale", 1)] * scale
    branches = [bn_conv(x, kernel_size=k, strides=strides, conv_name=f"{branch}.conv", bn_name=f"{branch}.bn1")
                for branch, k in sizes]
    if skip:
        branches.append(batch_norm(f"{prefix}_skip")(x))
    return layers.Add(name=prefix)(branches)


def ghost_module_v3(x, filters, relu, name, attention, folded):
    """GhostNetV3's Ghost module: primary 1x1 conv and cheap depthwise conv re-parameterisable, the cheap
    one with a 1x1 and an identity branch; DFC attention as V2 where `attention`."""
    primary = rep_conv(x, math.ceil(filters / 2), 1, 1, name, "primary", folded)
    if relu:
        primary = layers.ReLU(name=f"{name}.primary_activation")(primary)
    cheap = rep_conv(primary, None, CHEAP_KERNEL, 1, name, "cheap", folded, scale=True, skip=True)
    if relu:
        cheap = layers.ReLU(name=f"{name}.cheap_activation")(cheap)
    out = layers.Concatenate(name=f"{name}.concat")([primary, cheap])
    return dfc_attention(x, out, name) if attention else out


def rep_depthwise(x, kernel_size, strides, name, folded):
    """The strided depthwise conv of a V3 bottleneck: k x k branches and a 1x1 one, or the folded `conv_dw`."""
    return rep_conv(x, None, kernel_size, strides, name, "dw", folded, scale=True)


def GhostNetV2(width=1.0, input_shape=None, include_top=True, include_preprocessing=True, weights=None,
               input_tensor=None, pooling=None, classes=1000, dropout_rate=0.2,
               classifier_activation="softmax", name=None):
    """Build GhostNetV2 (timm's ghostnetv2_*; published widths 1.0, 1.3, 1.6). The arguments are those
    of `GhostNet`; `weights` is None, "imagenet" (timm's ghostnetv2_*.in1k) or a checkpoint path. Input sides
    must be >= 33."""
    def bottleneck_for(index):
        return functools.partial(ghost_bottleneck, ghost1=ghost_module_v2) if index >= PLAIN_BLOCKS else ghost_bottleneck

    return build_ghostnet(bottleneck_for, width, input_shape, include_top, include_preprocessing, weights,
                          input_tensor, pooling, classes, dropout_rate, classifier_activation,
                          name, MIN_INPUT_SIZE, "ghostnetv2")


def GhostNetV3(width=1.0, input_shape=None, include_top=True, include_preprocessing=True, weights=None,
               input_tensor=None, pooling=None, classes=1000, dropout_rate=0.2,
               classifier_activation="softmax", name=None, reparameterized=False):
    """Build GhostNetV3 (timm's ghostnetv3_*; widths 0.5, 1.0, 1.3, 1.6). The arguments are those of
    `GhostNet`; `weights` is None, "imagenet" (timm's ghostnetv3_100.in1k) or a checkpoint path (timm's multi-branch
    layout loads into either form).

    `reparameterized=False` gives the multi-branch training form (for fine-tuning; its parameters are
    timm's); True the folded inference form, the one to export. `reparameterize(model)` turns the first
    into the second with the same outputs.
    """
    rep_ghost = functools.partial(ghost_module_v3, folded=reparameterized)
    depthwise = functools.partial(rep_depthwise, folded=reparameterized)

    def bottleneck_for(index):
        return functools.partial(ghost_bottleneck, ghost1=functools.partial(rep_ghost, attention=index >= PLAIN_BLOCKS),
                                 ghost2=functools.partial(rep_ghost, attention=False), depthwise=depthwise)

    return build_ghostnet(bottleneck_for, width, input_shape, include_top, include_preprocessing, weights,
                          input_tensor, pooling, classes, dropout_rate, classifier_activation,
                          name, MIN_INPUT_SIZE, "ghostnetv3")


def reparameterize(model):
    """A new GhostNetV3 or RepGhostNet in the folded inference form with the weights of the training-form
    `model` summed into single convs: the same outputs (to float rounding), fewer and cheaper layers. The new
    model has the same configuration and name; it starts from a fresh input even if `model` was built on a
    tensor."""
    state = state_dict_from_model(model)
    if not has_branches(state):
        raise ValueError(f"reparameterize: model {model.name!r} has no re-parameterisable branches "
                         "(not a GhostNetV3 or RepGhostNet training-form model, or already folded)")
    found = {layer.name: layer for layer in model.layers}
    head, pool = found.get("classifier"), found.get("global_pool")
    pooling = None if head is not None or pool is None else (
        "avg" if isinstance(pool, layers.GlobalAveragePooling2D) else "max")
    folded = FAMILIES[infer_family(state)[0]](
        width=infer_width({k: v.shape for k, v in state.items()}), input_shape=tuple(model.inputs[0].shape[1:]),
        include_top=head is not None, include_preprocessing="preprocessing" in found, pooling=pooling,
        classes=head.units if head is not None else 1000,
        dropout_rate=found["dropout"].rate if "dropout" in found else 0.0,
        classifier_activation=head.activation if head is not None else "softmax", name=model.name,
        reparameterized=True)
    assign_state_dict(folded, fold_state_dict(state), f"model {model.name!r}")
    return folded


# The --family choices -> their builders, found by the names the registry gives them (registry.BUILDER_NAMES)
FAMILIES = {family: globals()[name] for family, name in BUILDER_NAMES.items()}
REPARAMETERIZABLE = ("v3", "rep")  # the families with a training and a folded form


def build_model(family="v1", width=1.0, reparameterized=None, **kwargs):
    """`GhostNet`, `GhostNetV2`, `GhostNetV3` or `RepGhostNet` by `family` ("v1", "v2", "v3", "rep"); for V3
    and RepGhostNet `reparameterized` (default True: the inference form, the one to export) chooses the form.
    `kwargs` go to the builder."""
    if family not in FAMILIES:
        raise ValueError(f"`family` must be one of {', '.join(FAMILIES)}, got {family!r}")
    if family in REPARAMETERIZABLE:
        kwargs["reparameterized"] = True if reparameterized is None else reparameterized
    elif reparameterized:
        raise ValueError(f"`reparameterized` applies to GhostNetV3 and RepGhostNet (families v3, rep) only, "
                         f"not to family {family}")
    return FAMILIES[family](width, **kwargs)


def create_model(name, weights=None, **kwargs):
    """``create_model("ghostnetv2_100", weights="imagenet")``: a registered model by timm's name
    (``ghostnet_tf.list_models()``); ``weights``: None, "imagenet" (its hub file) or a checkpoint path;
    ``kwargs`` are the builder's (``input_shape``, ``classes``, ``include_top``, ...). GhostNetV3 and RepGhostNet
    come in their folded inference form unless ``reparameterized=False``."""
    entry = get_entry(name)
    return build_model(entry.family, entry.width, weights=weights, **{"name": entry.name, **kwargs})
