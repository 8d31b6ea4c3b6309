"""GhostNetV2's DFC attention (Tang et al., arXiv 2211.12905): a cheap long-range gate on a Ghost module.

The gate is computed at half resolution from the module's input: 2x2 average pool -> 1x1 conv + BN ->
1x5 depthwise + BN -> 5x1 depthwise + BN, nearest-upsampled to the module's output -> sigmoid, and
multiplied in. Layer names are timm's (``<module>.short_conv.0`` ... ``.5``), so weights map by name.
"""
from keras import layers

from ghostnet_tf.blocks import conv_bn
from ghostnet_tf.layers import NearestUpsample, batch_norm

DFC_KERNEL = 5  # the 1xK and Kx1 depthwise kernels


def dfc_gate(x, channels, name):
    """The DFC attention logits of module `name` for its input `x`, at half resolution."""
    s = layers.AveragePooling2D(2, name=f"{name}.pool")(x)  # floor at odd sizes, as avg_pool2d
    s = conv_bn(s, channels, 1, 1, f"{name}.short_conv.0", f"{name}.short_conv.1")
    for index, kernel in ((2, (1, DFC_KERNEL)), (4, (DFC_KERNEL, 1))):
        # Stride 1 and odd kernels: "same" pads symmetrically, as PyTorch's padding (0, 2) / (2, 0).
        s = layers.DepthwiseConv2D(kernel, padding="same", use_bias=False, name=f"{name}.short_conv.{index}")(s)
        s = batch_norm(f"{name}.short_conv.{index + 1}")(s)
    return s


def dfc_attention(x, out, name):
    """``out * sigmoid(upsample(gate(x)))``: the DFC attention of module `name` (input `x`) on its output.

    The sigmoid comes after the upsampling (the same numbers: nearest upsampling only selects) so that
    int8 TFLite needs no requantization of the sigmoid's fixed output scale in the upsampling's concatenate."""
    logits = NearestUpsample(name=f"{name}.upsample")([dfc_gate(x, out.shape[-1], name), out])
    return layers.Multiply(name=f"{name}.attention")([out, layers.Activation("sigmoid", name=f"{name}.gate")(logits)])
