"""GhostNetV2's DFC attention (Tang et al., arXiv 2211.12905): a cheap long-range gate on a Ghost module.

The gate is computed at half resolution from the module's input: 2x2 average pool -> 1x1 conv + BN ->
1x5 depthwise + BN -> 5x1 depthwise + BN, nearest-upsampled to the module's output -> sigmoid, and
multiplied in. Layer names are timm's (``<module>.short_conv.0`` ... ``.5``), so weights map by name.
"""
import keras
from keras import layers, ops

from ghostnet_tf.blocks import conv_bn
from ghostnet_tf.layers import batch_norm

DFC_KERNEL = 5  # the 1xK and Kx1 depthwise kernels


def _rows(x, axis, start, stop):
    """``x[:, start:stop]`` along spatial `axis` (1 or 2); nothing when it keeps everything."""
    if start == 0 and (stop is None or stop >= x.shape[axis]):
        return x
    return x[:, start:stop] if axis == 1 else x[:, :, start:stop]


@keras.saving.register_keras_serializable(package="ghostnet_tf")
class NearestUpsample(layers.Layer):
    """Resize ``inputs[0]`` to the height and width of ``inputs[1]`` exactly like PyTorch's
    ``F.interpolate(mode="nearest")``: source index ``floor(i * in / out)``.

    After the 2x2 pool ``in = floor(out / 2)``, and then that is every row twice, with the first row once
    more when ``out`` is odd (``floor((2k+1)n / (2n+1)) = floor((2k+2)n / (2n+1)) = k``). Static sizes are
    built that way from concatenate, reshape and slice, which TFLite runs in int8 and XNNPACK takes (TF's
    nearest resize rounds half-pixel centres and differs at odd sizes; XNNPACK takes no gather or tile).
    Unknown sizes gather with the formula itself.
    """

    def call(self, inputs):
        x, like = inputs
        for axis in (1, 2):
            x = self._fit(x, ops.shape(like)[axis], axis)
        return x

    @staticmethod
    def _fit(x, size, axis):
        source = ops.shape(x)[axis]
        static = all(isinstance(d, int) for d in (size, *ops.shape(x)[1:]))
        if static and size in (2 * source, 2 * source + 1):
            odd = size % 2
            if odd:  # x0 x0 x1 ... -> doubled, minus the first row: x0 x0 x0 x1 x1 ...
                x = ops.concatenate([_rows(x, axis, 0, 1), x], axis=axis)
            doubled = ops.concatenate([ops.expand_dims(x, axis + 1)] * 2, axis=axis + 1)
            shape = [-1, *x.shape[1:]]
            shape[axis] = 2 * x.shape[axis]
            return _rows(ops.reshape(doubled, shape), axis, odd, None)
        scale = ops.cast(source, "float32") / ops.cast(size, "float32")
        index = ops.cast(ops.floor(ops.cast(ops.arange(size), "float32") * scale), "int32")
        return ops.take(x, ops.minimum(index, source - 1), axis=axis)

    def compute_output_shape(self, input_shapes):
        shape, like = input_shapes
        return (shape[0], like[1], like[2], shape[3])


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
