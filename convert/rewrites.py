"""Export-only rewrites of GhostNet: the same function in float, fewer instructions on ARM's kernels (one, for
RepGhostNet, a more accurate int8 file instead).

Each was kept because the instruction counter (``ghostnet bench arm``) showed it pays on Cortex-A76 and
Cortex-A53 (equalize-ranges: int8 fidelity on a trained model); docs/export-rewrites.md has the figures. They
act on the Keras graph just before export (``keras.models.clone_model`` with the original layers, so weights
are shared, not copied; equalize-ranges makes new layers for the ones it scales):

fold-normalization  The in-model ImageNet mean/std costs an int8 SUB and MUL over the whole 224x224x3 input
    (a per-channel affine cannot hide in the input's one scale). It is folded into the stem convolution
    (kernel / std). PyTorch pads *after* normalizing, so a zero border in pixel space is a mean-coloured one
    there: the difference is exactly the normalized stem of an all-zero image, a constant map that one ADD
    (with the stem's ReLU fused into it) puts back.
late-ghost-concat  In a stride-2 block the ghost module's concat feeds a depthwise conv, which works per
    channel: each half goes through its share of the depthwise conv and the concat happens after it, on a
    tensor 4x smaller.
fused-small-ghost  A ghost module with at most 8 intrinsic channels (the int8 conv kernels compute 16 output
    channels anyway) becomes one conv to 2x the channels (the intrinsic maps twice) and one depthwise conv
    that passes the first half through (a 1 at the centre) and makes the ghost maps from the second: no concat.
    int8 only: in float the wider depthwise conv costs more than the concat it saves.
depthwise-pool  GhostNetV2/V3's DFC gates open with a 2x2 average pool, which XNNPACK has no int8 kernel
    for: each of the 14 left the delegate and split the int8 graph into 15 partitions. A 2x2 stride-2
    depthwise conv of 1/4s (exact in float, the 1/4s exact in int8) is the same average and stays inside.
    int8 only: XNNPACK takes the float pool.
equalize-ranges  For accuracy, not instructions (the graph keeps its ops): a RepGhost module's primary conv
    feeds only its depthwise conv, and int8 gives that tensor one scale for all its channels, so channels with
    a small range get few levels. Each channel is scaled up to the largest channel's range on the calibration
    images (BN gamma and beta / s) and the depthwise kernel takes the inverse (kernel * s): exact in float
    (ReLU commutes with a positive scale), and weights are quantized per channel anyway. int8 only, and only
    with calibration images.

Measured on GhostNet-1.0x at 224 (instructions per inference, A76 / A53), each rewrite alone:
fold-normalization int8 -5.68 M / -5.68 M, float32 -2.40 M / -2.39 M; late-ghost-concat int8 -0.18 / -0.18,
float32 -0.66 / -0.69; fused-small-ghost int8 -0.90 / -0.90, float32 +1.18 / +3.44 (so not in float).
"""
import functools

import numpy as np

REWRITES = ("fold-normalization", "late-ghost-concat", "fused-small-ghost", "depthwise-pool", "equalize-ranges")
FLOAT_REWRITES = ("fold-normalization", "late-ghost-concat")  # the ones that pay for float kernels
SMALL_GHOST = 8  # intrinsic channels up to which the fused form pays (measured at 112x112)
POOL = (2, 2)  # the DFC gate's average pool (size = stride)
MIN_RANGE_RATIO = 1e-3  # equalize-ranges: a (nearly) dead channel is scaled up at most 1,000 times


# The layers of GhostNet's stem that fold-normalization replaces, and the layer of the export that does their work.
STEM_FOLD = {"preprocessing": "conv_stem_folded", "conv_stem": "conv_stem_folded", "act1": "act1_border"}


def replaced_by(name, applied, layers):
    """(rewrite, export layers) for a layer ``name`` of the model that the ``applied`` rewrites replaced (the export
    layers they made for it, out of ``layers``), else None: what --keep-float tells a user who names it."""
    if "fold-normalization" in applied and name in STEM_FOLD:
        return "fold-normalization", [STEM_FOLD[name]]
    made = [layer for layer in layers if layer.startswith(name + "_")]  # conv_dw_0, pool_depthwise, ...
    return (", ".join(applied), made) if made and applied else None


def default_rewrites(quantize):
    """The rewrites that paid on both emulated cores for this precision's kernels."""
    return REWRITES if quantize == "int8" else FLOAT_REWRITES


def parse_rewrites(text, quantize="int8"):
    """'auto' (the default set of the precision) | 'all' | 'none' | comma-separated names -> tuple of names
    (ValueError naming an unknown one)."""
    if text in (None, "auto"):
        return default_rewrites(quantize)
    if text == "all":
        return REWRITES
    if text == "none":
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in REWRITES]
    if unknown:
        raise ValueError(f"--rewrite: unknown rewrite {', '.join(unknown)}; "
                         f"choose from auto, all, none, {', '.join(REWRITES)}")
    return names


def _folded(conv, bn):
    """(kernel, bias) of a bias-free conv or depthwise conv followed by an inference-mode BatchNormalization."""
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    kernel = conv.kernel.numpy()
    # Conv2D kernels are (kh, kw, in, out); depthwise ones (kh, kw, channels, 1): scale the output channel.
    kernel = kernel * (scale if kernel.shape[-1] == scale.shape[0] else scale.reshape(1, 1, -1, 1))
    return kernel, beta - bn.moving_mean.numpy() * scale


def _constant(value):
    import keras

    return keras.initializers.Constant(np.asarray(value, np.float32))


def _depthwise(kernel, bias, strides=1, padding="valid", activation=None, name=None):
    """A depthwise conv with these weights; ``bias`` None: without bias."""
    from keras import layers

    return layers.DepthwiseConv2D(kernel.shape[0], strides=strides, padding=padding, activation=activation,
                                  use_bias=bias is not None, depthwise_initializer=_constant(kernel),
                                  bias_initializer=_constant(0.0 if bias is None else bias), name=name)


def _is_dfc_pool(layer):
    """The 2x2 stride-2 unpadded average pool that opens a DFC gate (ghostnet_tf.dfc)."""
    from keras import layers

    return (isinstance(layer, layers.AveragePooling2D) and layer.name.endswith(".pool")
            and tuple(layer.pool_size) == POOL and tuple(layer.strides) == POOL and layer.padding == "valid")


class _Plan:
    """What to rewrite in one model, decided from its layer names (the reference's module paths)."""

    def __init__(self, model, input_size, names, calibration=None):
        from ghostnet_tf.layers import GhostModule

        self.layers = {layer.name: layer for layer in model.layers}
        self.applied = []
        self.fold = ("fold-normalization" in names and input_size is not None
                     and all(n in self.layers for n in ("preprocessing", "conv_stem.pad", "conv_stem", "bn1", "act1")))
        ghosts = [l for l in model.layers if isinstance(l, GhostModule) and l.ratio == 2
                  and 2 * l.init_channels == l.filters]
        self.fused = {l.name for l in ghosts if "fused-small-ghost" in names
                      and l.init_channels <= SMALL_GHOST and l.kernel_size == 1 and l.strides == 1}
        self.late = {l.name for l in ghosts if "late-ghost-concat" in names and l.name not in self.fused
                     and l.name.endswith(".ghost1") and l.name[: -len(".ghost1")] + ".conv_dw" in self.layers}
        self.pools = {l.name for l in model.layers if "depthwise-pool" in names and _is_dfc_pool(l)}
        self.split = {}  # id(tensor) -> (first half, second half) of a concat not yet made
        self.bn_folded = set()  # BN layers folded into the split depthwise convs before them
        self.offset = self._stem_offset(input_size) if self.fold else None
        self.scales = _range_scales(model, calibration) if "equalize-ranges" in names and calibration is not None \
            else {}

    def _stem_offset(self, input_size):
        """bn1(stem(normalized zero image)) - bn1(0): what the zero border in pixel space leaves out."""
        layers = self.layers
        zeros = np.zeros((1, *input_size, 3), np.float32)
        stem = layers["conv_stem"](layers["conv_stem.pad"](layers["preprocessing"](zeros)))
        bn = layers["bn1"]
        return np.asarray(bn(stem, training=False) - bn(np.zeros_like(stem), training=False))[0]

    def call(self, layer, *args, **kwargs):
        from keras import layers

        name = layer.name
        if self.fold and name == "preprocessing":
            self._note("fold-normalization")
            return args[0]
        if self.fold and name == "conv_stem":
            norm = self.layers["preprocessing"]
            std = np.sqrt(np.reshape(np.asarray(norm.variance), -1))
            kernel = layer.kernel.numpy() / std[None, None, :, None]
            return layers.Conv2D(kernel.shape[-1], kernel.shape[0], strides=layer.strides, use_bias=False,
                                 kernel_initializer=_constant(kernel), name="conv_stem_folded")(args[0])
        if self.fold and name == "act1":
            return OffsetReLU(self.offset, name="act1_border")(args[0])
        if name in self.fused:
            self._note("fused-small-ghost")
            return self._fused_ghost(layer, args[0])
        if name in self.late:
            self._note("late-ghost-concat")
            return self._split_ghost(layer, args[0])
        if name in self.pools:
            self._note("depthwise-pool")
            kernel = np.full((*POOL, args[0].shape[-1], 1), 1.0 / np.prod(POOL), np.float32)
            return _depthwise(kernel, None, strides=POOL, name=f"{name}_depthwise")(args[0])
        parts = self.split.get(id(args[0])) if args else None
        if parts is not None and isinstance(layer, layers.ZeroPadding2D):
            return self._keep_split(layers.Concatenate(), [layer(p) for p in parts])
        if parts is not None and isinstance(layer, layers.DepthwiseConv2D):
            return self._split_depthwise(layer, parts)
        if name in self.bn_folded:
            return args[0]
        if name in self.scales:
            self._note("equalize-ranges")
            return _scaled(layer, self.scales[name])(args[0])
        return layer(*args, **kwargs)

    def _note(self, rewrite):
        if rewrite not in self.applied:
            self.applied.append(rewrite)

    def _keep_split(self, concat, parts):
        out = concat(parts)
        self.split[id(out)] = tuple(parts)
        return out

    def _split_ghost(self, ghost, x):
        """The ghost module's two halves, BN folded, with a concat that the depthwise conv will replace."""
        from keras import layers

        activation = "relu" if ghost.use_relu else None
        if ghost.primary_pad is not None:
            x = layers.ZeroPadding2D(ghost.primary_pad.padding, name=f"{ghost.name}.pad")(x)
        kernel, bias = _folded(ghost.primary_conv, ghost.primary_bn)
        x1 = layers.Conv2D(kernel.shape[-1], kernel.shape[0], strides=ghost.strides, activation=activation,
                           kernel_initializer=_constant(kernel), bias_initializer=_constant(bias),
                           name=f"{ghost.name}.primary")(x)
        kernel, bias = _folded(ghost.cheap_operation, ghost.cheap_bn)
        x2 = _depthwise(kernel, bias, padding="same", activation=activation, name=f"{ghost.name}.cheap")(x1)
        return self._keep_split(layers.Concatenate(name=f"{ghost.name}.concat_unused"), [x1, x2])

    def _split_depthwise(self, dw, parts):
        """The block's stride-2 depthwise conv and its BN (folded) on each half, then the concat."""
        from keras import layers

        block = dw.name[: -len(".conv_dw")]
        bn = self.layers[f"{block}.bn_dw"]
        kernel, shift = _folded(dw, bn)
        outs, start = [], 0
        for index, part in enumerate(parts):
            width = part.shape[-1]
            outs.append(_depthwise(kernel[:, :, start:start + width], shift[start:start + width], dw.strides,
                                   name=f"{dw.name}_{index}")(part))
            start += width
        self.bn_folded.add(bn.name)
        return layers.Concatenate(name=f"{block}.concat")(outs)

    def _fused_ghost(self, ghost, x):
        from keras import layers

        activation = "relu" if ghost.use_relu else None
        init = ghost.init_channels
        primary, p_shift = _folded(ghost.primary_conv, ghost.primary_bn)
        cheap, c_shift = _folded(ghost.cheap_operation, ghost.cheap_bn)
        conv = layers.Conv2D(2 * init, primary.shape[0], use_bias=True, activation=activation,
                             kernel_initializer=_constant(np.concatenate([primary, primary], axis=-1)),
                             bias_initializer=_constant(np.concatenate([p_shift, p_shift])),
                             name=f"{ghost.name}.fused_conv")
        identity = np.zeros_like(cheap)
        identity[cheap.shape[0] // 2, cheap.shape[1] // 2] = 1.0
        dw = _depthwise(np.concatenate([identity, cheap], axis=2), np.concatenate([np.zeros(init), c_shift]),
                        padding="same", activation=activation, name=f"{ghost.name}.fused_dw")
        return dw(conv(x))


def _rep_modules(model):
    """The folded RepGhost modules: (BN of the primary conv, the layer whose output is the primary output, the
    depthwise conv that alone reads it). The training form (with its ``fusion_bn`` branch) has none."""
    from keras import layers

    found = {layer.name: layer for layer in model.layers}
    modules = []
    for name, dw in found.items():
        if not name.endswith(".cheap_operation"):
            continue
        module = name[: -len(".cheap_operation")]
        bn = found.get(f"{module}.primary_conv.1")
        if (isinstance(dw, layers.DepthwiseConv2D) and dw.use_bias and isinstance(bn, layers.BatchNormalization)
                and f"{module}.fusion_bn.0" not in found):
            modules.append((bn, found.get(f"{module}.primary_conv.2", bn), dw))
    return modules


def _range_scales(model, calibration):
    """{layer name: per-channel scale}: the primary BN's output multiplies by 1 / s, its depthwise conv's
    kernel by s, where s is each channel's range over ``calibration`` relative to the largest channel's."""
    import keras

    modules = _rep_modules(model)
    if not modules:
        return {}
    probe = keras.Model(model.inputs, [out.output for _, out, _ in modules])
    ranges = probe.predict(np.asarray(calibration, np.float32), batch_size=32, verbose=0)
    scales = {}
    for (bn, _, dw), values in zip(modules, ranges if len(modules) > 1 else [ranges]):
        r = np.abs(values).max(axis=(0, 1, 2))
        if r.max() > 0:
            s = np.maximum(r / r.max(), MIN_RANGE_RATIO).astype(np.float32)
            scales[bn.name] = scales[dw.name] = s
    return scales


def _scaled(layer, s):
    """A copy of the primary BN with its output divided by ``s``, or of the depthwise conv with its kernel times
    ``s`` (per channel)."""
    from keras import layers

    if isinstance(layer, layers.DepthwiseConv2D):
        return _depthwise(layer.kernel.numpy() * s[None, None, :, None], layer.bias.numpy(), layer.strides,
                          layer.padding, layer.activation, name=f"{layer.name}_equalized")
    gamma = layer.gamma.numpy() if layer.scale else np.ones_like(s)
    beta = layer.beta.numpy() if layer.center else np.zeros_like(s)
    return layers.BatchNormalization(epsilon=layer.epsilon, gamma_initializer=_constant(gamma / s),
                                     beta_initializer=_constant(beta / s),
                                     moving_mean_initializer=_constant(layer.moving_mean.numpy()),
                                     moving_variance_initializer=_constant(layer.moving_variance.numpy()),
                                     name=f"{layer.name}_equalized")


@functools.cache
def _offset_relu_class():
    import keras

    class OffsetReLU(keras.layers.Layer):
        """relu(x + offset) with a constant (H, W, C) offset: one ADD with the ReLU fused."""

        def __init__(self, offset, **kwargs):
            super().__init__(**kwargs)
            self.offset = np.asarray(offset, np.float32)

        def call(self, x):
            return keras.ops.relu(x + self.offset[None])

    return OffsetReLU


def OffsetReLU(offset, name=None):
    return _offset_relu_class()(offset, name=name)


def apply(model, input_size, names, calibration=None):
    """(the export form of ``model``, the rewrites that applied). Models without GhostNet's layer names
    (MobileNets, custom models) come back unchanged. ``calibration``: model inputs (N, H, W, 3) that
    equalize-ranges measures channel ranges on (without them it does not apply)."""
    import keras

    if not names:
        return model, []
    plan = _Plan(model, input_size, names, calibration)
    if not (plan.fold or plan.fused or plan.late or plan.pools or plan.scales):
        return model, []
    rewritten = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=plan.call)
    return rewritten, plan.applied
