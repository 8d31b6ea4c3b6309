"""The GhostNet family (arXiv 1911.11907) as a ``keras.applications``-style functional builder."""
import os

import keras
from keras import layers

from ghostnet_tf.blocks import conv_bn, ghost_bottleneck, make_divisible
from ghostnet_tf.preprocessing import normalization_layer
from ghostnet_tf.registry import imagenet_entry
from ghostnet_tf.spec import LAST_CHANNELS, STEM_CHANNELS, check_width, default_name
from ghostnet_tf.weights import load_pretrained

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


def _check_input_shape(input_shape, min_size=MIN_INPUT_SIZE):
    if len(input_shape) != 3:
        raise ValueError(f"GhostNet: `input_shape` must be (height, width, 3), got {input_shape!r}")
    height, width, channels = input_shape
    if channels != 3:
        raise ValueError(f"GhostNet: `input_shape` must have 3 (RGB) channels last, got {channels!r} "
                         f"in {tuple(input_shape)!r}")
    for side in (height, width):
        if side is not None and (not isinstance(side, int) or side < min_size):
            raise ValueError(f"GhostNet: `input_shape` sides must be None or integers >= {min_size}, "
                             f"got {tuple(input_shape)!r}")


def _check_arguments(width, include_top, weights, pooling, classes, family):
    check_width(width)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"GhostNet: `classes` must be an integer >= 1, got {classes!r}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"GhostNet: `pooling` must be None, 'avg' or 'max', got {pooling!r}")
    if not (weights is None or weights == "imagenet" or isinstance(weights, (str, os.PathLike))):
        raise ValueError(f"GhostNet: `weights` must be {WEIGHTS_CHOICES}, got {weights!r}")
    if weights == "imagenet":
        imagenet_entry(default_name(width, family))
    if isinstance(weights, (str, os.PathLike)) and weights != "imagenet" and not os.path.isfile(weights):
        raise ValueError(f"GhostNet: `weights` must be {WEIGHTS_CHOICES}; no such file: {os.fspath(weights)!r}")


def GhostNet(width=1.0, input_shape=None, include_top=True, include_preprocessing=True, weights=None,
             input_tensor=None, pooling=None, classes=1000, dropout_rate=0.2,
             classifier_activation="softmax", name=None):
    """Build GhostNet, exact to the official/timm network (layer names follow its state-dict names).

    Args:
        width: channel multiplier (> 0); the published models are 0.5, 1.0 and 1.3.
        input_shape: (height, width, 3); sides >= 32 or None. Defaults to (224, 224, 3).
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
    _check_arguments(width, include_top, weights, pooling, classes, family)
    name = name or default_name(width, family)
    if input_shape is None:
        input_shape = tuple(input_tensor.shape[1:]) if input_tensor is not None else (224, 224, 3)
    _check_input_shape(tuple(input_shape), min_size)

    if input_tensor is None:
        inputs = layers.Input(shape=input_shape, name="image")
    elif not keras.backend.is_keras_tensor(input_tensor):  # Keras 3's Input(tensor=...) takes Keras tensors only
        raise ValueError(f"GhostNet: `input_tensor` must be a Keras tensor (keras.Input(...) or a layer's output), "
                         f"got {type(input_tensor).__name__}; to run the model on data, call it: model(data)")
    else:
        inputs = input_tensor
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

    if input_tensor is not None and keras.backend.is_keras_tensor(input_tensor):
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
