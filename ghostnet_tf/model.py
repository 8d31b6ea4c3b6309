"""The GhostNet family (arXiv 1911.11907) as a ``keras.applications``-style functional builder."""
import os

import keras
from keras import layers

from ghostnet_tf.blocks import conv_bn, ghost_bottleneck, make_divisible
from ghostnet_tf.preprocessing import normalization_layer
from ghostnet_tf.registry import builder_name, imagenet_entry
from ghostnet_tf.spec import LAST_CHANNELS, STEM_CHANNELS, check_classes, check_width, default_name
from ghostnet_tf.weights import IMAGENET_CLASSES, load_pretrained

# The architecture as data, one tuple per stage: (kernel, expansion, out, se_ratio, stride) per block.
# Width-1.0 channel counts; every one is scaled by make_divisible(c * width, 4).
STAGES = (
    ((3, 16, 16, 0, 1),),
    ((3, 48, 24, 0, 2),),
    ((3, 72, 24, 0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0, 2),),
    ((3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1)),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)),
)
HEAD_CHANNELS = 1280  # conv_head, never scaled
MIN_INPUT_SIZE = 32

# Output stride -> layer whose output is the feature map (timm's feature_info for GhostNet).
FEATURE_LAYERS = {2: "act1", 4: "blocks.1.0", 8: "blocks.3.0", 16: "blocks.5.0", 32: "blocks.7.0"}

WEIGHTS_CHOICES = ("None, 'imagenet' (the widths timm publishes weights for: ghostnet_tf.list_models(pretrained=True)) "
                   "or the path to a .safetensors/.pth/.pt/.weights.h5 file")


# ImageNet's weights (their stem conv) and mean/std are for RGB; without them any count of channels is fine.
RGB_CHANNELS = 3
# Hyperspectral sensors have a few hundred bands; a typo like 10**6 channels fails here instead of exhausting memory.
MAX_INPUT_CHANNELS = 1024


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_input_shape(input_shape, min_size, where, source="`input_shape`"):
    """(height, width, channels), channels last, as a tuple; ValueError naming `where` and `source` otherwise."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"{where}: {source} must be (height, width, channels), got {input_shape!r}")
    input_shape = tuple(input_shape)
    *sides, channels = input_shape
    if not _is_int(channels) or not 1 <= channels <= MAX_INPUT_CHANNELS:
        raise ValueError(f"{where}: {source} must end in a channel count from 1 to {MAX_INPUT_CHANNELS} "
                         f"(channels last; 3 for RGB), got {channels!r} in {input_shape!r}")
    for side in sides:
        if side is not None and (not _is_int(side) or side < min_size):
            raise ValueError(f"{where}: {source} sides must be None or integers >= {min_size}, got {input_shape!r}")
    return input_shape


def _check_channels(channels, include_preprocessing, weights, where, source):
    """Any channel count, unless the weights' stem conv or the in-model ImageNet mean/std need RGB."""
    if channels == RGB_CHANNELS:
        return
    got = f"got {channels} in {source}"
    if weights is not None:  # a checkpoint too: every published GhostNet checkpoint has an RGB stem
        raise ValueError(f"{where}: weights={os.fspath(weights)!r} needs 3 input channels, {got}: the stem conv "
                         "(conv_stem) of GhostNet's ImageNet, timm and official weights takes 3 (RGB) channels; pass "
                         f"weights=None to train a {channels}-channel model from scratch (the weights of such a model "
                         "load with ghostnet_tf.load_weights(model, path))")
    if include_preprocessing:
        raise ValueError(f"{where}: include_preprocessing=True needs 3 (RGB) input channels, {got}: the in-model "
                         "normalization is ImageNet's mean/std, 3 values; pass include_preprocessing=False and "
                         f"normalize the {channels} channels yourself")


def _model_input(input_shape, input_tensor, where):
    """(input shape, the argument it came from): `input_tensor`'s shape when given (`input_shape` must agree)."""
    if input_tensor is None:
        return (224, 224, RGB_CHANNELS) if input_shape is None else input_shape, "`input_shape`"
    if not keras.backend.is_keras_tensor(input_tensor):  # Keras 3's Input(tensor=...) takes Keras tensors only
        raise ValueError(f"{where}: `input_tensor` must be a Keras tensor (keras.Input(...) or a layer's output), "
                         f"got {type(input_tensor).__name__}; to run the model on data, call it: model(data)")
    shape = tuple(input_tensor.shape[1:])
    if input_shape is not None and not (isinstance(input_shape, (tuple, list)) and len(input_shape) == len(shape)
                                        and all(a is None or a == b for a, b in zip(input_shape, shape))):
        raise ValueError(f"{where}: `input_shape` {input_shape!r} does not match the shape of `input_tensor` "
                         f"{shape!r} (without the batch); pass one of them")
    return shape, "`input_tensor`"


def _check_activation(activation, weights, where):
    """keras.applications' rules: a Keras activation; with ImageNet weights only softmax or None (logits)."""
    try:
        function = keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: `classifier_activation` must be None or a Keras activation (a name such as "
                         f"'softmax', or a function), got {activation!r}") from None
    if weights == "imagenet" and function not in (keras.activations.get("softmax"), keras.activations.get(None)):
        raise ValueError(f"{where}: Only `None` and `softmax` activations are allowed for the `classifier_activation` "
                         f"argument when using pretrained weights, with `include_top=True`; Received: "
                         f"classifier_activation={activation!r}")


def _check_arguments(width, include_top, weights, pooling, classes, dropout_rate, classifier_activation, where,
                     family):
    """Every argument but the input, before anything is built or downloaded; ValueError naming `where`."""
    check_width(width, where)
    check_classes(classes, f"{where}: `classes`")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"{where}: `pooling` must be None, 'avg' or 'max', got {pooling!r}")
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) or not 0 <= dropout_rate < 1:
        raise ValueError(f"{where}: `dropout_rate` must be a number from 0 to below 1, got {dropout_rate!r}")
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(f"{where}: builds channels-last models only (input (height, width, channels)), but "
                         f"keras.config.image_data_format() is {keras.config.image_data_format()!r}; call "
                         "keras.config.set_image_data_format('channels_last') first")
    if not (weights is None or weights == "imagenet" or isinstance(weights, (str, os.PathLike))):
        raise ValueError(f"{where}: `weights` must be {WEIGHTS_CHOICES}, got {weights!r}")
    if weights == "imagenet":
        imagenet_entry(default_name(width, family))
        if include_top and classes != IMAGENET_CLASSES:  # keras.applications' rule and message
            raise ValueError(f'{where}: If using `weights="imagenet"` with `include_top=True`, `classes` should be '
                             f"{IMAGENET_CLASSES}. Received classes={classes}; for other classes build with "
                             "include_top=False and add a head")
    elif isinstance(weights, (str, os.PathLike)) and not os.path.isfile(weights):
        raise ValueError(f"{where}: `weights` must be {WEIGHTS_CHOICES}; no such file: {os.fspath(weights)!r}")
    if include_top:
        _check_activation(classifier_activation, weights, where)


def GhostNet(width=1.0, input_shape=None, include_top=True, include_preprocessing=True, weights=None,
             input_tensor=None, pooling=None, classes=1000, dropout_rate=0.2,
             classifier_activation="softmax", name=None):
    """Build GhostNet, exact to the official/timm network (layer names follow its state-dict names).

    Args:
        width: channel multiplier (> 0); the published models are 0.5, 1.0 and 1.3.
        input_shape: (height, width, channels); sides >= 32 or None. Defaults to (224, 224, 3). Channels other
            than 3 (grayscale, RGBA, multispectral) need weights=None and include_preprocessing=False.
        include_top: keep conv_head and the classifier; otherwise the output is the 960*width-channel
            feature map, reduced by `pooling` (None, "avg" or "max").
        include_preprocessing: the model takes RGB in [0, 255] and applies the ImageNet mean/std
            (the form that exports best to phones). Otherwise feed `preprocess_input(images)`.
        weights: None (random init), "imagenet" (timm's ghostnet_100.in1k, width 1.0) or a checkpoint path.
        input_tensor: optional Keras tensor to build the model on.
        classes, dropout_rate, classifier_activation: the classifier (with `include_top`).
        name: model name; default "ghostnet_100" for width 1.0.
    """
    return build_ghostnet(lambda index: ghost_bottleneck, width, input_shape, include_top, include_preprocessing,
                          weights, input_tensor, pooling, classes, dropout_rate, classifier_activation, name)


def build_ghostnet(bottleneck_for, width, input_shape, include_top, include_preprocessing, weights, input_tensor,
                   pooling, classes, dropout_rate, classifier_activation, name, min_size=MIN_INPUT_SIZE,
                   family="ghostnet"):
    """The GhostNet network around the bottleneck ``bottleneck_for(block_index)`` (counted over all
    stages), which is the only thing GhostNetV2/V3 change; the arguments are those of `GhostNet`, and
    `family` (timm's name prefix) makes the default name."""
    where = builder_name(family)
    _check_arguments(width, include_top, weights, pooling, classes, dropout_rate, classifier_activation, where, family)
    name = name or default_name(width, family)
    input_shape, source = _model_input(input_shape, input_tensor, where)
    input_shape = _check_input_shape(input_shape, min_size, where, source)
    _check_channels(input_shape[-1], include_preprocessing, weights, where, source)
    inputs = layers.Input(shape=input_shape, name="image") if input_tensor is None else input_tensor
    x = normalization_layer()(inputs) if include_preprocessing else inputs

    x = conv_bn(x, make_divisible(STEM_CHANNELS * width), 3, 2, "conv_stem", "bn1", "act1")
    blocks = ((f"blocks.{i}.{j}", block) for i, stage in enumerate(STAGES) for j, block in enumerate(stage))
    for index, (block_name, (kernel, expansion, out, se_ratio, strides)) in enumerate(blocks):
        x = bottleneck_for(index)(x, make_divisible(expansion * width), make_divisible(out * width),
                                  kernel, strides, se_ratio, name=block_name)
    last = f"blocks.{len(STAGES)}.0"
    x = conv_bn(x, make_divisible(LAST_CHANNELS * width), 1, 1, f"{last}.conv", f"{last}.bn1", f"{last}.act1")

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="global_pool")(x)
        x = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=True, name="conv_head")(x)
        x = layers.ReLU(name="act2")(x)
        x = layers.Flatten(name="flatten")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="classifier")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="global_pool")(x)

    if input_tensor is not None:
        sources = keras.utils.get_source_inputs(input_tensor)  # the model starts where the tensor comes from
        inputs = sources[0] if len(sources) == 1 else sources
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_pretrained(model, weights, imagenet_entry(default_name(width, family)) if weights == "imagenet" else None)
    return model


def feature_model(model, strides=(4, 8, 16, 32)):
    """A model with the same input giving the feature maps at the given output strides
    (2, 4, 8, 16, 32), for detection and segmentation heads. Shares the weights of `model`."""
    unknown = [s for s in strides if s not in FEATURE_LAYERS]
    if unknown:
        raise ValueError(f"feature_model: `strides` must be among {sorted(FEATURE_LAYERS)}, got {unknown}")
    outputs = [model.get_layer(FEATURE_LAYERS[s]).output for s in strides]
    return keras.Model(model.input, outputs, name=f"{model.name}_features")
