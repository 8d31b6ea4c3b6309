"""The package's Keras layers: GhostModule (a few "intrinsic" feature maps plus cheap depthwise "ghost" maps)
and GhostNetV2's NearestUpsample.

Imports nothing from the package, so ``ghostnet_tf`` can register these classes as soon as Keras is imported
(see ``ghostnet_tf/__init__.py``), even from the middle of another module's import."""
import math

import keras
from keras import layers, ops

# PyTorch BatchNorm defaults; the reference checkpoints were trained with them.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def batch_norm(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def symmetric_pad(kernel_size, name):
    """Pad like PyTorch's ``padding=k // 2``: TF's "same" pads only bottom/right at stride 2."""
    pad = kernel_size // 2
    return layers.ZeroPadding2D(pad, name=name) if pad else None


@keras.saving.register_keras_serializable(package="ghostnet_tf")
class GhostModule(layers.Layer):
    """Conv2D -> BN -> ReLU makes ``ceil(filters / ratio)`` intrinsic maps; a depthwise conv with
    depth multiplier ``ratio - 1`` makes the ghost maps; both are concatenated and the first
    ``filters`` channels kept (no slice is emitted when nothing is cut).

    Sub-layer names follow the reference (``primary_conv``, ``cheap_operation``) so that weights
    map by name. Only ``keras.layers``/``keras.ops`` are used, so every Keras backend runs it.
    """

    def __init__(self, filters, ratio=2, kernel_size=1, dw_size=3, strides=1, use_relu=True, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("ratio", ratio), ("kernel_size", kernel_size),
                           ("dw_size", dw_size), ("strides", strides)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GhostModule: `{arg}` must be a positive integer, got {value!r}")
        if ratio < 2:
            raise ValueError(f"GhostModule: `ratio` must be >= 2 (ratio 1 has no ghost maps), got {ratio}")
        if dw_size % 2 == 0:
            raise ValueError(f"GhostModule: `dw_size` must be odd so the ghost maps keep the size, got {dw_size}")
        self.filters = filters
        self.ratio = ratio
        self.kernel_size = kernel_size
        self.dw_size = dw_size
        self.strides = strides
        self.use_relu = use_relu
        self.init_channels = math.ceil(filters / ratio)
        self.new_channels = self.init_channels * (ratio - 1)

        self.primary_pad = symmetric_pad(kernel_size, "primary_pad")
        self.primary_conv = layers.Conv2D(self.init_channels, kernel_size, strides=strides,
                                          padding="valid", use_bias=False, name="primary_conv")
        self.primary_bn = batch_norm("primary_bn")
        # Stride 1 and an odd kernel: "same" is symmetric here, identical to PyTorch.
        self.cheap_operation = layers.DepthwiseConv2D(dw_size, depth_multiplier=ratio - 1, padding="same",
                                                      use_bias=False, name="cheap_operation")
        self.cheap_bn = batch_norm("cheap_bn")

    def build(self, input_shape):
        shape = input_shape
        if self.primary_pad is not None:
            self.primary_pad.build(shape)
            shape = self.primary_pad.compute_output_shape(shape)
        self.primary_conv.build(shape)
        shape = self.primary_conv.compute_output_shape(shape)
        self.primary_bn.build(shape)
        self.cheap_operation.build(shape)
        self.cheap_bn.build(self.cheap_operation.compute_output_shape(shape))

    def _act(self, x):
        return ops.relu(x) if self.use_relu else x

    def call(self, inputs, training=None):
        x = inputs if self.primary_pad is None else self.primary_pad(inputs)
        x1 = self._act(self.primary_bn(self.primary_conv(x), training=training))
        x2 = self._act(self.cheap_bn(self.cheap_operation(x1), training=training))
        out = ops.concatenate([x1, x2], axis=-1)
        if self.init_channels + self.new_channels != self.filters:
            out = out[..., : self.filters]
        return out

    def compute_output_shape(self, input_shape):
        shape = input_shape if self.primary_pad is None else self.primary_pad.compute_output_shape(input_shape)
        shape = self.primary_conv.compute_output_shape(shape)
        return (*shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, ratio=self.ratio, kernel_size=self.kernel_size,
                      dw_size=self.dw_size, strides=self.strides, use_relu=self.use_relu)
        return config


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
