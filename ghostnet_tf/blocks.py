"""GhostNet's building blocks as small functions on Keras tensors, named after the reference modules."""
from keras import layers

from ghostnet_tf.layers import GhostModule, batch_norm, symmetric_pad


def make_divisible(v, divisor=4, round_limit=0.9):
    """Channel rounding of the reference: nearest multiple of ``divisor``, never more than 10 % down."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def conv_bn(x, filters, kernel_size, strides, conv_name, bn_name, act_name=None):
    """Conv (no bias, symmetric padding) -> BN [-> ReLU if ``act_name``]; PyTorch-compatible at every stride."""
    pad = symmetric_pad(kernel_size, f"{conv_name}.pad")
    if pad is not None:
        x = pad(x)
    x = layers.Conv2D(filters, kernel_size, strides=strides, use_bias=False, name=conv_name)(x)
    x = batch_norm(bn_name)(x)
    return layers.ReLU(name=act_name)(x) if act_name else x


def depthwise_bn(x, kernel_size, strides, conv_name, bn_name):
    """Depthwise conv (no bias, symmetric padding) -> BN, no activation (reference semantics)."""
    pad = symmetric_pad(kernel_size, f"{conv_name}.pad")
    if pad is not None:
        x = pad(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, use_bias=False, name=conv_name)(x)
    return batch_norm(bn_name)(x)


def squeeze_excite(x, channels, se_ratio, name):
    """SE with the hard-sigmoid gate relu6(z + 3) / 6 and a reduced width rounded to 4."""
    reduced = make_divisible(channels * se_ratio, 4)
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.pool")(x)
    s = layers.Conv2D(reduced, 1, name=f"{name}.conv_reduce")(s)
    s = layers.ReLU(name=f"{name}.act1")(s)
    s = layers.Conv2D(channels, 1, name=f"{name}.conv_expand")(s)
    s = layers.Activation("hard_sigmoid", name=f"{name}.gate")(s)
    return layers.Multiply(name=f"{name}.mul")([x, s])


def ghost_module(x, filters, relu, name):
    """GhostNet's (V1) Ghost module, the default `ghost1`/`ghost2` of `ghost_bottleneck`."""
    return GhostModule(filters, use_relu=relu, name=name)(x)


def strided_depthwise(x, kernel_size, strides, name):
    """The stride-2 depthwise conv + BN of a bottleneck (`conv_dw`, `bn_dw`), no activation."""
    return depthwise_bn(x, kernel_size, strides, f"{name}.conv_dw", f"{name}.bn_dw")


def ghost_bottleneck(x, mid_channels, out_channels, kernel_size, strides, se_ratio, name,
                     ghost1=ghost_module, ghost2=ghost_module, depthwise=strided_depthwise):
    """ghost1 -> [stride-2 depthwise + BN] -> [SE] -> ghost2 (no ReLU) -> + shortcut, no final activation.

    GhostNetV2/V3 keep this block and swap the parts: `ghost1`/`ghost2` are ``f(x, filters, relu, name)``,
    `depthwise` is ``f(x, kernel_size, strides, name)``.
    """
    in_channels = x.shape[-1]
    shortcut = x
    x = ghost1(x, mid_channels, True, f"{name}.ghost1")
    if strides > 1:
        x = depthwise(x, kernel_size, strides, name)
    if se_ratio:
        x = squeeze_excite(x, mid_channels, se_ratio, f"{name}.se")
    x = ghost2(x, out_channels, False, f"{name}.ghost2")
    if in_channels != out_channels or strides > 1:
        shortcut = depthwise_bn(shortcut, kernel_size, strides, f"{name}.shortcut.0", f"{name}.shortcut.1")
        shortcut = conv_bn(shortcut, out_channels, 1, 1, f"{name}.shortcut.2", f"{name}.shortcut.3")
    return layers.Add(name=name)([x, shortcut])
