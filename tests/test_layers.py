"""GhostModule semantics against an independent numpy implementation of the reference module."""
import math

import keras
import numpy as np
import pytest

from ghostnet_tf import GhostModule


def _bn(x, gamma, beta, mean, var):
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta  # PyTorch's epsilon


def _depthwise_same(x, kernel, multiplier):
    """Depthwise conv, stride 1, symmetric zero padding; output channel c*m+j as in PyTorch groups."""
    k = kernel.shape[0]
    p = k // 2
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros((n, h, w, c * multiplier), np.float64)
    for ch in range(c):
        for j in range(multiplier):
            acc = np.zeros((n, h, w))
            for dy in range(k):
                for dx in range(k):
                    acc += xp[:, dy:dy + h, dx:dx + w, ch] * kernel[dy, dx, ch, j]
            out[..., ch * multiplier + j] = acc
    return out


def _reference(layer, x):
    """The reference GhostModule forward pass (kernel_size 1), in float64 numpy."""
    pc, pbn, co, cbn = (layer.primary_conv, layer.primary_bn, layer.cheap_operation, layer.cheap_bn)
    x1 = np.einsum("nhwc,co->nhwo", x, np.asarray(pc.kernel)[0, 0])
    x1 = _bn(x1, *(np.asarray(w) for w in pbn.weights))
    if layer.use_relu:
        x1 = np.maximum(x1, 0)
    x2 = _depthwise_same(x1, np.asarray(co.kernel), layer.ratio - 1)
    x2 = _bn(x2, *(np.asarray(w) for w in cbn.weights))
    if layer.use_relu:
        x2 = np.maximum(x2, 0)
    return np.concatenate([x1, x2], axis=-1)[..., : layer.filters]


def _randomize(layer, seed):
    """Random weights and BN statistics, so BN inference is exercised, not the identity."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        shape = tuple(w.shape)
        if "variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            w.assign(rng.normal(0, 0.5, shape).astype("float32"))


@pytest.mark.parametrize("filters,ratio,use_relu", [(16, 2, True), (15, 2, True), (16, 3, True), (10, 2, False)])
def test_matches_numpy_reference(filters, ratio, use_relu):
    layer = GhostModule(filters, ratio=ratio, use_relu=use_relu)
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 5)).astype("float32")
    layer(x)
    _randomize(layer, seed=filters + ratio)
    out = keras.ops.convert_to_numpy(layer(x))
    init = math.ceil(filters / ratio)
    assert layer.init_channels == init and layer.new_channels == init * (ratio - 1)
    assert out.shape == (2, 9, 7, filters)
    np.testing.assert_allclose(out, _reference(layer, x.astype(np.float64)), atol=1e-4, rtol=1e-4)
    if not use_relu:
        assert out.min() < 0, "use_relu=False must let negative values through"
    else:
        assert out.min() >= 0


def _tflite_ops(model):
    import tensorflow as tf

    from ghostnet_tf.runtime import make_interpreter

    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interpreter = make_interpreter(model_content=content, use_xnnpack=False)
    return [op["op_name"] for op in interpreter._get_ops_details()]


@pytest.mark.parametrize("filters,expect_slice", [(16, False), (15, True)])
def test_slice_only_when_channels_are_cut(filters, expect_slice):
    model = keras.Sequential([keras.Input((8, 8, 4)), GhostModule(filters)])
    ops = _tflite_ops(model)
    has_slice = any(op in ("SLICE", "STRIDED_SLICE") for op in ops)
    assert has_slice == expect_slice, ops
    assert "CONCATENATION" in ops and "DEPTHWISE_CONV_2D" in ops


def test_strided_kernel3_pads_symmetrically():
    layer = GhostModule(8, kernel_size=3, strides=2)
    out = layer(np.zeros((1, 16, 16, 3), "float32"))
    assert out.shape == (1, 8, 8, 8)  # PyTorch: floor((16 + 2 - 3) / 2) + 1


def test_functional_and_config_round_trip():
    inputs = keras.Input((None, None, 3))
    x = GhostModule(12, ratio=3, dw_size=5, use_relu=False, name="g")(inputs)
    model = keras.Model(inputs, GhostModule(8)(x))
    layer = model.get_layer("g")
    clone = GhostModule.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.filters, clone.ratio, clone.dw_size, clone.use_relu) == (12, 3, 5, False)
    assert model(np.ones((1, 11, 13, 3), "float32")).shape == (1, 11, 13, 8)


@pytest.mark.parametrize("kwargs,word", [
    ({"filters": 0}, "filters"), ({"filters": 8, "ratio": 1}, "ratio"),
    ({"filters": 8, "dw_size": 4}, "dw_size"), ({"filters": 8, "strides": 0}, "strides"),
    ({"filters": 2.5}, "filters"),
])
def test_bad_arguments_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        GhostModule(**kwargs)
