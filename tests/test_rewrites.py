"""The export rewrites (convert/rewrites.py): exact in float, fully int8, applied only where GhostNet's
patterns are, and visible in the converted graph."""
import collections

import keras
import numpy as np
import pytest

from convert import convert_model, rewrites
from convert.inference import predict
from ghostnet_tf.runtime import make_interpreter
from ghostnet_tf import GhostNet
from ghostnet_tf.cli import main
from ghostnet_tf.layers import GhostModule

SIZE = (64, 64)
# V1 has no DFC gate and no RepGhost module
V1_REWRITES = tuple(name for name in rewrites.REWRITES if name not in ("depthwise-pool", "equalize-ranges"))


@pytest.fixture(scope="module")
def model():
    """GhostNet-0.5x with BatchNorm statistics far from the identity, so that every fold is really exercised."""
    keras.utils.set_random_seed(7)
    return with_bn_statistics(GhostNet(width=0.5, input_shape=(*SIZE, 3), classes=10, classifier_activation=None),
                              gamma=(0.5, 1.5))


def with_bn_statistics(net, gamma):
    """``net`` with seeded BatchNorm statistics and affine terms far from the identity, gamma uniform in ``gamma``."""
    rng = np.random.default_rng(0)
    for variable in net.weights:
        kind = variable.path.rsplit("/", 1)[-1]
        draw = {"moving_variance": lambda s: rng.uniform(0.3, 3.0, s), "moving_mean": lambda s: rng.normal(0, 0.5, s),
                "gamma": lambda s: rng.uniform(*gamma, s), "beta": lambda s: rng.normal(0, 0.3, s)}.get(kind)
        if draw:
            variable.assign(draw(variable.shape).astype("float32"))
    return net


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).uniform(0, 255, (4, *SIZE, 3)).astype("float32")


def ghost_modules(net):
    return [layer for layer in net.layers if isinstance(layer, GhostModule)]


@pytest.mark.parametrize("names", [(name,) for name in V1_REWRITES] + [V1_REWRITES])
def test_each_rewrite_keeps_the_float_outputs(model, pixels, names):
    rewritten, applied = rewrites.apply(model, SIZE, names)
    assert sorted(applied) == sorted(names)
    expected = model(pixels, training=False).numpy()
    got = rewritten(pixels, training=False).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    if "fold-normalization" in names:
        assert not any(isinstance(layer, keras.layers.Normalization) for layer in rewritten.layers)


def test_border_of_the_folded_stem_is_exact(model):
    """A mean-coloured image is all zeros after normalization: only the padding border shapes the stem there."""
    mean_pixel = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
    image = np.broadcast_to(mean_pixel, (1, *SIZE, 3)).copy()
    rewritten, _ = rewrites.apply(model, SIZE, ("fold-normalization",))
    np.testing.assert_allclose(rewritten(image, training=False), model(image, training=False), rtol=1e-5, atol=1e-5)


def test_models_without_the_patterns_come_back_unchanged():
    inputs = keras.Input((32, 32, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(inputs)))
    assert rewrites.apply(plain, (32, 32), rewrites.REWRITES) == (plain, [])


def test_fold_needs_a_fixed_input_size(model):
    free = GhostNet(width=0.5, input_shape=(None, None, 3), classes=10)
    _, applied = rewrites.apply(free, None, rewrites.REWRITES)
    assert "fold-normalization" not in applied and applied


@pytest.mark.parametrize("text, quantize, names", [
    ("auto", "int8", ("fold-normalization", "late-ghost-concat", "fused-small-ghost", "depthwise-pool",
                      "equalize-ranges")),
    ("auto", "float32", ("fold-normalization", "late-ghost-concat")),
    ("all", "float32", rewrites.REWRITES), ("none", "int8", ()),
    ("late-ghost-concat", "int8", ("late-ghost-concat",))])
def test_parse_rewrites(text, quantize, names):
    assert rewrites.parse_rewrites(text, quantize) == names


def test_an_unknown_rewrite_is_one_line(capsys):
    assert main(["convert", "--width", "0.5", "--rewrite", "fold-everything", "-o", "x.tflite"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ghostnet: error: --rewrite: unknown rewrite fold-everything; choose from auto, all, none, "
        "fold-normalization, late-ghost-concat, fused-small-ghost, depthwise-pool, equalize-ranges")


@pytest.fixture(scope="module")
def converted(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rewrites")
    return {(quantize, rewrite): convert_model(model, folder / f"{quantize}-{rewrite}.tflite", quantize,
                                               calibration_steps=16, show_progress=False,
                                               rewrite=rewrites.parse_rewrites(rewrite, quantize))
            for quantize, rewrite in (("float32", "auto"), ("int8", "none"), ("int8", "auto"))}


@pytest.mark.slow
def test_float32_file_matches_the_keras_model(model, pixels, converted):
    conversion = converted[("float32", "auto")]
    assert sorted(conversion.rewrites) == ["fold-normalization", "late-ghost-concat"]
    got = predict(make_interpreter(model_path=conversion.path), pixels)
    expected = model(pixels, training=False).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.slow
def test_int8_file_is_all_int8_without_the_normalization_and_with_fewer_concats(model, converted):
    before, after = (converted[("int8", r)].audit for r in ("none", "auto"))
    assert after["int8"]["ok"] and all(check["ok"] for check in after["hygiene"].values())
    ops_before, ops_after = collections.Counter(before["ops"]), collections.Counter(after["ops"])
    assert ops_before["SUB"] == 1 and ops_after["SUB"] == 0  # the per-channel mean, now in the stem
    small = [g for g in ghost_modules(model) if g.init_channels <= rewrites.SMALL_GHOST]
    assert small and ops_after["CONCATENATION"] == ops_before["CONCATENATION"] - len(small)


@pytest.mark.slow
def test_int8_fidelity_holds(model, converted):
    """On random-weight logits: the rewritten int8 file stays as close to the float model as the plain one."""
    images = np.random.default_rng(5).uniform(0, 255, (8, *SIZE, 3)).astype("float32")
    expected = model(images, training=False).numpy()

    def sqnr(path):
        got = predict(make_interpreter(model_path=path), images)
        return 10 * np.log10(np.sum(expected ** 2) / np.sum((got - expected) ** 2))

    before, after = sqnr(converted[("int8", "none")].path), sqnr(converted[("int8", "auto")].path)
    assert after > 15 and after >= before - 1.0


@pytest.mark.parametrize("family", ["v2", "v3"])
def test_rewrites_keep_the_float_outputs_of_v2_and_v3(family, pixels):
    """GhostNetV2 (DFC attention) and the folded GhostNetV3 share V1's stem and ghost modules: whatever
    rewrites find their pattern there, and the DFC gates' pools as depthwise convs, stay exact in float."""
    from ghostnet_tf import build_model

    net = build_model(family, 0.5, input_shape=(*SIZE, 3), classes=10, classifier_activation=None)
    rewritten, applied = rewrites.apply(net, SIZE, rewrites.REWRITES)
    assert {"fold-normalization", "depthwise-pool"} <= set(applied)
    expected = net(pixels, training=False).numpy()
    got = rewritten(pixels, training=False).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.fixture(scope="module")
def folded_rep():
    """A folded RepGhostNet-0.5x with BatchNorm statistics far from the identity and uneven channel ranges."""
    from ghostnet_tf import RepGhostNet

    keras.utils.set_random_seed(7)
    return with_bn_statistics(RepGhostNet(width=0.5, reparameterized=True, input_shape=(*SIZE, 3), classes=10,
                                          classifier_activation=None), gamma=(0.05, 2.0))


def depthwise_input_ranges(net, pixels, suffix=""):
    """Per RepGhost module, each channel's largest |value| of what its depthwise conv reads (the primary output)."""
    probe = keras.Model(net.inputs, [l.input for l in net.layers if l.name.endswith(".cheap_operation" + suffix)])
    return [np.abs(v).max(axis=(0, 1, 2)) for v in probe.predict(pixels, verbose=0)]


def test_equalize_ranges_keeps_the_float_outputs_and_evens_the_channels(folded_rep, pixels):
    """RepGhost's primary outputs get one int8 scale per tensor: after the rewrite every channel spans the largest
    channel's range on the calibration images, and the network computes the same function."""
    rewritten, applied = rewrites.apply(folded_rep, SIZE, ("equalize-ranges",), calibration=pixels)
    assert applied == ["equalize-ranges"]
    expected = folded_rep(pixels, training=False).numpy()
    got = rewritten(pixels, training=False).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    before = depthwise_input_ranges(folded_rep, pixels)
    after = depthwise_input_ranges(rewritten, pixels, "_equalized")
    assert len(before) == len(after) == 16 * 2
    assert max(r.max() / max(r.min(), 1e-12) for r in before) > 10  # uneven to begin with
    least = rewrites.MIN_RANGE_RATIO  # a (nearly) dead channel is scaled up at most 1 / least times
    for r0, r in zip(before, after):
        np.testing.assert_allclose(r, np.where(r0 >= least * r0.max(), r0.max(), r0 / least), rtol=1e-4, atol=1e-6)


def test_equalize_ranges_needs_calibration_and_a_folded_repghost(folded_rep, model, pixels):
    from ghostnet_tf import RepGhostNet

    training_form = RepGhostNet(width=0.5, input_shape=(*SIZE, 3), classes=10)
    assert rewrites.apply(folded_rep, SIZE, ("equalize-ranges",)) == (folded_rep, [])
    assert rewrites.apply(training_form, SIZE, ("equalize-ranges",), calibration=pixels) == (training_form, [])
    assert rewrites.apply(model, SIZE, ("equalize-ranges",), calibration=pixels) == (model, [])
