"""The GhostNet builder: exactness figures from the spec, shapes, serialization, training, bad input."""
import json

import keras
import numpy as np
import pytest

from ghostnet_tf import GhostNet, feature_model, preprocess_input, profile

# Trainable parameters and MACs at 224 from the reference (shared/reference/ghostnet.md).
REFERENCE = {0.5: (2_587_292, 42.3e6), 1.0: (5_182_508, 141.2e6), 1.3: (7_358_820, 227.0e6)}


@pytest.mark.parametrize("width", sorted(REFERENCE))
def test_params_and_macs_match_reference(width):
    params, macs = REFERENCE[width]
    info = profile(GhostNet(width=width))
    assert info["params"] == params
    assert abs(info["macs"] - macs) / macs < 0.01
    assert info["stages"][0]["stage"] == "stem" and info["stages"][-1]["stage"] == "head"
    assert sum(r["params"] for r in info["stages"]) == params


def test_reference_traps():
    model = GhostNet(width=0.5, input_shape=(64, 64, 3))
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(l.epsilon == 1e-5 for l in bns)
    for name in ("conv_stem", "bn1", "blocks.1.0.conv_dw", "blocks.1.0.shortcut.2", "blocks.3.0.se.conv_reduce",
                 "blocks.6.3.ghost2", "blocks.9.0.conv", "conv_head", "classifier"):
        model.get_layer(name)
    # Stride-2 convolutions pad explicitly (symmetric), never with TF's "same".
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.strides != (1, 1):
            assert layer.padding == "valid", layer.name
    gate = model.get_layer("blocks.3.0.se.gate")
    z = np.array([-4.0, -3.0, 0.0, 1.5, 3.0, 5.0], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gate(z)), [0, 0, 0.5, 0.75, 1, 1], atol=1e-6)


@pytest.fixture(scope="module")
def small_model():
    return GhostNet(width=0.5, input_shape=(64, 64, 3), classes=10)


def test_save_load_round_trip(small_model, tmp_path):
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    path = tmp_path / "m.keras"
    small_model.save(path)
    loaded = keras.models.load_model(path)  # GhostModule is registered: no custom_objects
    np.testing.assert_array_equal(loaded(x), small_model(x))


def test_non_square_and_dynamic_inputs():
    model = GhostNet(width=0.5, input_shape=(193, 257, 3), include_top=False)
    assert model.output.shape == (None, 7, 9, 480)  # ceil-halving five times, as PyTorch does
    dynamic = GhostNet(width=0.5, input_shape=(None, None, 3), classes=7)
    for h, w in ((64, 96), (97, 33)):
        out = dynamic(np.zeros((1, h, w, 3), "float32"))
        assert out.shape == (1, 7)


@pytest.mark.parametrize("pooling,shape", [(None, (None, 2, 2, 480)), ("avg", (None, 480)), ("max", (None, 480))])
def test_backbone_pooling(pooling, shape):
    model = GhostNet(width=0.5, input_shape=(64, 64, 3), include_top=False, pooling=pooling)
    assert model.output.shape == shape


def test_feature_model_strides(small_model):
    features = feature_model(small_model)
    outs = features(np.zeros((1, 64, 64, 3), "float32"))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 12), (1, 8, 8, 20), (1, 4, 4, 40), (1, 2, 2, 80)]
    with pytest.raises(ValueError, match="strides"):
        feature_model(small_model, strides=(3,))


def test_feature_model_at_stride_2_is_the_stem(small_model):
    """Stride 2: conv_stem -> bn1 -> ReLU on the normalized input, recomputed here with tf.nn ops."""
    import tensorflow as tf

    stem = feature_model(small_model, strides=(2,))
    x = np.random.default_rng(3).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    out = np.asarray(stem(x))
    assert out.shape == (1, 32, 32, 8)
    kernel = small_model.get_layer("conv_stem").kernel.numpy()
    bn = small_model.get_layer("bn1")
    for weight, value in zip((bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance),
                             np.random.default_rng(4).uniform(0.5, 1.5, (4, 8)).astype("float32")):
        weight.assign(value)
    out = np.asarray(stem(x))
    normalized = (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    conv = tf.nn.conv2d(np.pad(normalized, ((0, 0), (1, 1), (1, 1), (0, 0))).astype("float32"), kernel, 2, "VALID")
    expected = np.maximum(0, (np.asarray(conv) - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-5)
                          * bn.gamma.numpy() + bn.beta.numpy())
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_preprocessing_inside_equals_outside():
    inside = GhostNet(width=0.5, input_shape=(64, 64, 3), classes=5, include_preprocessing=True)
    outside = GhostNet(width=0.5, input_shape=(64, 64, 3), classes=5, include_preprocessing=False)
    for layer in outside.layers:
        layer.set_weights(inside.get_layer(layer.name).get_weights())
    x = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(outside(preprocess_input(x)), inside(x), atol=1e-5)
    # (0 / 255 - 0.485) / 0.229 and (1 - 0.406) / 0.225, by hand.
    np.testing.assert_allclose(preprocess_input([[0, 0, 255]]), [[-2.1179039, -2.0357143, 2.64]], atol=1e-6)


def test_short_fit_changes_weights():
    model = GhostNet(width=0.5, input_shape=(32, 32, 3), classes=3)
    # Eager: tracing the full training graph takes minutes on 2 cores and tests nothing more.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(3).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    history = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("kwargs,word", [
    ({"width": 0}, "width"), ({"width": -1.0}, "width"),
    ({"input_shape": (31, 64, 3)}, "input_shape"), ({"input_shape": (64, 64, 1)}, "input_shape"),
    ({"input_shape": (64, 64)}, "input_shape"),
    ({"weights": "imagenet21k"}, "weights"), ({"weights": 3}, "weights"),
    ({"classes": 0}, "classes"), ({"pooling": "sum", "include_top": False}, "pooling"),
])
def test_bad_arguments_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        GhostNet(**kwargs)


def test_cli_info_json(cli):
    code, out, err = cli("info", "--width", "0.5", "--input-size", "224", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["params"] == 2_587_292 and info["input_shape"] == [224, 224, 3]
    assert [row["stage"] for row in info["stages"]][:3] == ["stem", "blocks.0", "blocks.1"]


def test_cli_version(cli):
    from importlib.metadata import version

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"ghostnet {version('ghostnet-tf')}"


def test_cli_bad_input_is_one_line(cli_error):
    assert "input_shape" in cli_error("info", "--input-size", "16")


def test_input_tensor_from_a_preceding_layer():
    image = keras.Input((64, 64, 3))
    scaled = keras.layers.Rescaling(255.0)(image)  # e.g. [0, 1] camera frames into the [0, 255] model
    model = GhostNet(width=0.5, input_tensor=scaled, classes=4)
    assert model.inputs[0] is image and model.output.shape == (None, 4)
    assert model(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 4)


def test_input_tensor_that_is_not_a_keras_tensor():
    """A plain TensorFlow tensor or array cannot start a functional model in Keras 3: a clear error, not Keras's."""
    import tensorflow as tf

    for tensor in (tf.zeros((2, 64, 64, 3)), np.zeros((2, 64, 64, 3), "float32")):
        with pytest.raises(ValueError, match=r"^GhostNet: `input_tensor` must be a Keras tensor .* got "
                                             + type(tensor).__name__):
            GhostNet(width=0.5, input_tensor=tensor, classes=3)


@pytest.mark.parametrize("width", [float("inf"), float("nan"), 1e9, 4.5])
def test_absurd_width_is_refused_before_building(width):
    with pytest.raises(ValueError, match=r"`width` must be a number > 0 and <= 4"):
        GhostNet(width=width)
