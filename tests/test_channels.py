"""keras.applications' conventions for every family: any input channel count where the weights and the
in-model normalization allow it (keras' own application tests build ``weights=None, include_top=False,
input_shape=(None, None, 1)`` and ``(None, None, 4)``), a clear refusal where they do not, and the other
arguments keras.applications checks (issue 21)."""
import functools

import keras
import numpy as np
import pytest

from conftest import FIXTURES
from ghostnet_tf import GhostNet, GhostNetV2, GhostNetV3, RepGhostNet, create_model, load_weights, reparameterize

# (builder name, builder, extra arguments): every family, GhostNetV3 and RepGhostNet in both forms
FORMS = {
    "v1": ("GhostNet", GhostNet, {}),
    "v2": ("GhostNetV2", GhostNetV2, {}),
    "v3-train": ("GhostNetV3", GhostNetV3, {"reparameterized": False}),
    "v3-folded": ("GhostNetV3", GhostNetV3, {"reparameterized": True}),
    "rep-train": ("RepGhostNet", RepGhostNet, {"reparameterized": False}),
    "rep-folded": ("RepGhostNet", RepGhostNet, {"reparameterized": True}),
}
WIDTH = 0.5
STEM = 8  # make_divisible(16 * 0.5)
NO_NORMALIZATION = {"include_preprocessing": False}
IMAGENET_FILE = str(FIXTURES / "cifar10_ghostnet_100.safetensors")  # any GhostNet checkpoint: its stem takes RGB


@functools.cache
def built(form, channels, include_top):
    """The `form` model for `channels` input channels at any size (cached: the tests only read it)."""
    _, builder, extra = FORMS[form]
    top = {"classes": 7, "classifier_activation": None} if include_top else {}
    return builder(WIDTH, input_shape=(None, None, channels), include_top=include_top, weights=None,
                   **NO_NORMALIZATION, **top, **extra)


def images(height, width, channels, seed=0):
    return np.random.default_rng(seed).normal(size=(1, height, width, channels)).astype("float32")


# One model per form, 1 or 4 channels (keras' own application test: include_top=False, 1 and 4 channels), for the
# forward passes, the stem, `reparameterize` and `load_weights` below.
CASES = {"v1": (1, False), "v2": (4, True), "v3-train": (4, True), "v3-folded": (1, False), "rep-train": (4, True),
         "rep-folded": (1, False)}


@pytest.mark.parametrize("form", FORMS)
def test_any_channel_count_builds_and_runs_at_any_size(form):
    channels, include_top = CASES[form]
    model = built(form, channels, include_top)
    assert model.input_shape == (None, None, None, channels)
    assert model.get_layer("conv_stem").kernel.shape == (3, 3, channels, STEM)  # the stem reads every channel
    for size in ((64, 64), (67, 45)):  # even and odd sides
        out = np.asarray(model(images(*size, channels), training=False))
        assert np.isfinite(out).all()
        if include_top:  # logits: classifier_activation=None
            assert out.shape == (1, 7) and model.get_layer("classifier").activation is keras.activations.linear
        else:
            assert out.shape == (1, *(-(-s // 32) for s in size), 480)


def test_stem_parameters_scale_with_channels():
    """Only the stem conv grows with the channels: 3 x 3 x STEM weights per channel."""
    rgb = GhostNet(WIDTH, input_shape=(None, None, 3), include_top=False, **NO_NORMALIZATION)
    assert rgb.count_params() - built("v1", 1, False).count_params() == 2 * 9 * STEM


@pytest.mark.parametrize("form", ["v3-train", "rep-train"])
def test_reparameterize_keeps_the_channel_count(form):
    model = built(form, *CASES[form])
    folded = reparameterize(model)
    assert folded.input_shape == (None, None, None, 4) and folded.get_layer("conv_stem").kernel.shape[2] == 4
    x = images(64, 64, 4, seed=1)
    expected, got = np.asarray(model(x, training=False)), np.asarray(folded(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_input_tensor_with_other_channels():
    image = keras.Input((None, None, 2), name="two_bands")
    scaled = keras.layers.Rescaling(1 / 255.0)(image)
    model = GhostNetV2(WIDTH, input_tensor=scaled, include_top=False, pooling="max", **NO_NORMALIZATION)
    assert model.inputs[0] is image and model.output_shape == (None, 480)
    assert np.asarray(model(images(48, 40, 2))).shape == (1, 480)


def test_load_weights_of_a_c_channel_model(tmp_path):
    """The builder refuses a checkpoint with channels != 3 (every published one has an RGB stem);
    the weights of a C-channel model still load by `load_weights` into a model built with weights=None."""
    from safetensors.numpy import save_file

    from ghostnet_tf.weights import state_dict_from_model

    source = built("v1", 1, False)
    path = str(tmp_path / "gray.safetensors")
    # contiguous: safetensors 0.8 writes a transposed view's buffer in memory order, silently scrambled
    save_file({k: np.ascontiguousarray(v) for k, v in state_dict_from_model(source).items()}, path)
    keras.utils.set_random_seed(1)  # other initial weights than the source's
    target = GhostNet(WIDTH, input_shape=(None, None, 1), include_top=False, **NO_NORMALIZATION)
    load_weights(target, path)
    for got, expected in zip(target.weights, source.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


# ---- refusals: checked before anything is built or downloaded ----

CHANNEL_REFUSALS = [
    # (arguments, what the message must say)
    ({"weights": "imagenet", "include_preprocessing": False},
     r"weights='imagenet' needs 3 input channels, got 1 in `input_shape`.*conv_stem.*3 \(RGB\)"),
    ({"weights": IMAGENET_FILE, "include_preprocessing": False},
     r"weights='.*cifar10_ghostnet_100.safetensors' needs 3 input channels, got 1 in `input_shape`.*conv_stem"),
    ({"include_preprocessing": True},
     r"include_preprocessing=True needs 3 \(RGB\) input channels, got 1 in `input_shape`.*mean/std"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kwargs,message", CHANNEL_REFUSALS)
def test_other_channel_counts_are_refused_where_weights_or_normalization_need_rgb(form, kwargs, message):
    name, builder, extra = FORMS[form]
    with pytest.raises(ValueError, match=rf"^{name}: {message}"):
        builder(1.0, input_shape=(224, 224, 1), **kwargs, **extra)


@pytest.mark.parametrize("model_name,family", [("ghostnet_100", "GhostNet"), ("ghostnetv2_100", "GhostNetV2"),
                                               ("ghostnetv3_100", "GhostNetV3"), ("repghostnet_050", "RepGhostNet")])
def test_create_model_names_the_family(model_name, family):
    with pytest.raises(ValueError, match=rf"^{family}: weights='imagenet' needs 3 input channels, got 4 in "):
        create_model(model_name, weights="imagenet", input_shape=(None, None, 4), include_preprocessing=False)
    with pytest.raises(ValueError, match=rf"^{family}: include_preprocessing=True needs 3 \(RGB\) input channels"):
        create_model(model_name, input_shape=(None, None, 4))


def test_input_tensor_channels_are_checked_and_named():
    with pytest.raises(ValueError, match=r"^GhostNet: weights='imagenet' needs 3 input channels, got 1 in "
                                         r"`input_tensor`"):
        GhostNet(input_tensor=keras.Input((224, 224, 1)), weights="imagenet", include_preprocessing=False)
    with pytest.raises(ValueError, match=r"^GhostNetV2: `input_shape` \(64, 64, 3\) does not match the shape of "
                                         r"`input_tensor` \(64, 64, 1\)"):
        GhostNetV2(WIDTH, input_shape=(64, 64, 3), input_tensor=keras.Input((64, 64, 1)))


@pytest.mark.parametrize("shape", [(64, 64, 0), (64, 64, None), (64, 64, -2), (64, 64, 2.0), (64, 64, True),
                                   (64, 64, 100_000)])
def test_bad_channel_counts(shape):
    with pytest.raises(ValueError, match=r"^RepGhostNet: `input_shape` must end in a channel count from 1 to "):
        RepGhostNet(WIDTH, input_shape=shape, include_preprocessing=False)


# ---- the other keras.applications conventions, across the families ----

SIBLINGS = [
    # (arguments, the message; None: builds)
    ({"input_shape": (16, 16, 3)}, r"`input_shape` sides must be None or integers >= 3[23]"),
    ({"input_shape": 224}, r"`input_shape` must be \(height, width, channels\), got 224"),
    ({"width": 0}, r"`width` must be a number > 0"),
    ({"classes": 0}, r"`classes`: expected a number of classes from 1 to 30,000, got 0"),
    ({"classes": 10 ** 9}, r"`classes`: expected a number of classes from 1 to 30,000"),
    ({"width": 1.0, "weights": "imagenet", "classes": 10},
     r'If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. Received classes=10'),
    ({"width": 1.0, "weights": "imagenet", "classifier_activation": "sigmoid"},
     r"Only `None` and `softmax` activations are allowed for the `classifier_activation` argument when using "
     r"pretrained weights"),
    ({"classifier_activation": "softmaxx"}, r"`classifier_activation` must be None or a Keras activation"),
    ({"dropout_rate": 1.5}, r"`dropout_rate` must be a number from 0 to below 1, got 1.5"),
    ({"dropout_rate": -0.1}, r"`dropout_rate` must be a number from 0 to below 1, got -0.1"),
    ({"dropout_rate": "0.2"}, r"`dropout_rate` must be a number from 0 to below 1, got '0.2'"),
    ({"pooling": "sum", "include_top": False}, r"`pooling` must be None, 'avg' or 'max'"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kwargs,message", SIBLINGS)
def test_keras_application_arguments_are_checked_first(form, kwargs, message):
    name, builder, extra = FORMS[form]
    with pytest.raises(ValueError, match=rf"^{name}: {message}"):
        builder(**{"width": WIDTH, **kwargs}, **extra)


@pytest.mark.parametrize("form,pooling,shape", [("v1", "avg", (None, 480)), ("v2", "max", (None, 480)),
                                                ("rep-folded", None, (None, 2, 2, 480))])
def test_pooling_of_a_headless_model(form, pooling, shape):
    _, builder, extra = FORMS[form]
    assert builder(WIDTH, input_shape=(64, 64, 3), include_top=False, pooling=pooling, **extra).output_shape == shape


def test_imagenet_backbone_allows_any_classes_without_top(local_hub, tmp_path):
    """keras' rule binds `classes` only with include_top=True: a headless ImageNet backbone takes any `classes`."""
    local_hub("ghostnet_100", IMAGENET_FILE)
    model = GhostNet(weights="imagenet", include_top=False, classes=10, input_shape=(64, 64, 3), pooling="avg")
    assert model.output_shape == (None, 960)


def test_channels_first_is_refused():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match=r"^GhostNetV3: builds channels-last models only"):
            GhostNetV3(WIDTH, input_shape=(64, 64, 3))
    finally:
        keras.config.set_image_data_format("channels_last")
