"""RepGhostNet (Chen et al., arXiv 2211.06088), exact to timm's ``repghostnet_*``: GhostNet's network whose Ghost
module adds instead of concatenating. The primary 1x1 conv makes all the module's channels ``x1``; the output
is ``relu(cheap(x1) + fusion_bn(x1))``, a 3x3 depthwise conv + BN plus a BN of ``x1`` (an identity branch, for
training only). For inference the identity branch folds into the depthwise conv (`reparameterize`), leaving one
1x1 conv and one depthwise conv with a bias per module: no concatenation, which costs memory traffic on phones.
"""
import functools

from keras import layers

from ghostnet_tf.blocks import conv_bn, depthwise_bn, ghost_bottleneck, make_divisible
from ghostnet_tf.layers import batch_norm, symmetric_pad
from ghostnet_tf.model import build_ghostnet

CHEAP_KERNEL = 3  # the depthwise "cheap operation"
# timm's cfgs are GhostNet's STAGES (kernels, outputs, SE, strides) with these expansion channels, block by block:
# RepGhost's add keeps all of the primary conv's channels, where GhostNet keeps half and concatenates ghosts.
EXPANSIONS = (8, 24, 36, 36, 60, 120, 100, 120, 120, 240, 336, 336, 480, 480, 480, 480)


def rep_ghost_module(x, filters, relu, name, reparameterized):
    """timm's RepGhostModule: ``primary_conv`` 1x1 conv + BN [+ ReLU] -> ``cheap_operation`` 3x3 depthwise + BN,
    plus ``fusion_bn.0`` (BN of the primary output) [-> ReLU]. Folded: ``cheap_operation`` is one depthwise conv
    with a bias, as timm's ``switch_to_deploy`` names it."""
    act = f"{name}.primary_conv.2" if relu else None
    primary = conv_bn(x, filters, 1, 1, f"{name}.primary_conv.0", f"{name}.primary_conv.1", act)
    if reparameterized:
        pad = symmetric_pad(CHEAP_KERNEL, f"{name}.cheap_operation.pad")
        out = layers.DepthwiseConv2D(CHEAP_KERNEL, use_bias=True, name=f"{name}.cheap_operation")(pad(primary))
    else:
        cheap = depthwise_bn(primary, CHEAP_KERNEL, 1, f"{name}.cheap_operation.0", f"{name}.cheap_operation.1")
        out = layers.Add(name=f"{name}.fusion")([cheap, batch_norm(f"{name}.fusion_bn.0")(primary)])
    return layers.ReLU(name=f"{name}.relu")(out) if relu else out


def RepGhostNet(width=1.0, input_shape=None, include_top=True, include_preprocessing=True, weights=None,
                input_tensor=None, pooling=None, classes=1000, dropout_rate=0.2,
                classifier_activation="softmax", name=None, reparameterized=False):
    """Build RepGhostNet (timm's repghostnet_*; widths 0.5, 0.58, 0.8, 1.0, 1.11, 1.3, 1.5, 2.0, all with
    ImageNet weights). The arguments are those of `GhostNet`; `weights` is None, "imagenet" (timm's
    repghostnet_*.in1k) or a checkpoint path (timm's training layout loads into either form).

    `reparameterized=False` gives the training form with the identity-BN branches (for fine-tuning; its
    parameters are timm's); True the folded inference form, the one to export. `reparameterize(model)` turns
    the first into the second with the same outputs.
    """
    module = functools.partial(rep_ghost_module, reparameterized=reparameterized)

    def bottleneck_for(index):
        mid_channels = make_divisible(EXPANSIONS[index] * width)

        def bottleneck(x, ghostnet_mid, out_channels, kernel_size, strides, se_ratio, name):
            # the builder passes GhostNet's expansion of this block; RepGhost's own (`mid_channels`) replaces it
            return ghost_bottleneck(x, mid_channels, out_channels, kernel_size, strides, se_ratio, name,
                                    ghost1=module, ghost2=module)
        return bottleneck

    return build_ghostnet(bottleneck_for, width, input_shape, include_top, include_preprocessing, weights,
                          input_tensor, pooling, classes, dropout_rate, classifier_activation, name,
                          family="repghostnet")
