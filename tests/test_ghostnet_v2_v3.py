"""GhostNetV2 and GhostNetV3: parity with timm itself, timm's parameter counts, the DFC upsampling at odd sizes,
V3's folding (`reparameterize`, folded loading), checkpoint errors that name the family, port, info, the zoo,
one small int8 conversion of V2 (the audit) and one float32 export of the folded V3.

The expected logits come from timm (tests/fixtures/parity_ghostnetv*.npz, made by tools/make_parity_fixtures.py);
the weights are rebuilt here from the fixture's seeds with numpy alone. Nothing touches the network.
"""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from parity import TOLERANCE, Checkpoint, load_checkpoints, one_line_error, recipe
from safetensors.numpy import save_file

from convert import convert_and_verify
from ghostnet_tf.runtime import make_interpreter
from ghostnet_tf import GhostNetV2, GhostNetV3, load_weights, profile, reparameterize
from ghostnet_tf import weights as gw
from ghostnet_tf.cli import main
from ghostnet_tf.layers import NearestUpsample
from ghostnet_tf.reparam import fold_state_dict

BUILDERS = {"ghostnetv2": GhostNetV2, "ghostnetv3": GhostNetV3}
# timm 1.0.x: sum(p.numel() for p in timm.create_model(name).parameters()), and after convert_to_deploy()
TIMM_PARAMS = {("ghostnetv2", 1.0): 6_156_908, ("ghostnetv2", 1.3): 8_960_404, ("ghostnetv3", 0.5): 3_395_384,
               ("ghostnetv3", 1.0): 8_129_028}
TIMM_DEPLOY_PARAMS = {0.5: 2_853_176}
# GhostNetV2 paper (arXiv 2211.12905), Table 2: FLOPs (multiply-adds) at 224
PAPER_MACS = {1.0: 167e6, 1.3: 269e6}
ARCHS = tuple(recipe.WIDTHS_V2_V3)
CASES = [(arch, tuple(case)) for arch in ARCHS for case in recipe.CASES[arch]]


class FamilyCheckpoint(Checkpoint):
    """A V2/V3 fixture (V3: multi-branch), with the model of its family and width and its logit difference."""

    def __init__(self, arch, directory):
        super().__init__(arch, directory)
        self.family = arch.split("_")[0]

    def build(self, height=224, width=224, **kwargs):
        """The Keras model for this checkpoint's family and width: normalised input, pre-softmax logits."""
        return BUILDERS[self.family](self.width, input_shape=(height, width, 3), include_preprocessing=False,
                                     classifier_activation=None, **kwargs)

    def max_diff(self, model, height=224, width=224, count=2, seed=1):
        images, logits = self.case(height, width, count, seed)
        out = keras.ops.convert_to_numpy(model(recipe.normalize(images), training=False))
        return float(np.abs(out - logits).max())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return load_checkpoints(ARCHS, tmp_path_factory, FamilyCheckpoint)


@pytest.fixture(scope="module")
def models(checkpoints):
    """arch -> its model at 224 with the checkpoint as `weights` (V3 in the multi-branch training form)."""
    return {arch: checkpoint.build(weights=checkpoint.path) for arch, checkpoint in checkpoints.items()}


@pytest.mark.parametrize("arch, case", CASES, ids=[f"{a}-{c[0]}x{c[1]}" for a, c in CASES])
def test_logits_match_timm(checkpoints, models, arch, case):
    checkpoint = checkpoints[arch]
    height, width = case[:2]
    if (height, width) == (224, 224):
        model = models[arch]
    else:  # odd, non-square: the DFC pool and upsampling at odd sizes
        model = checkpoint.build(height, width, weights=checkpoint.path)
    diff = checkpoint.max_diff(model, *case)
    print(f"\n{arch} {height}x{width}: max |keras - timm| = {diff:.2e}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize("size, source", [(7, 3), (8, 4), (97, 48), (128, 64), (3, 1), (10, 3)])
def test_nearest_upsample_is_pytorchs(size, source):
    """PyTorch's 'nearest' (floor(i * in / out) in float32), at static and at unknown sizes (tf.function)."""
    x = np.random.default_rng(size).standard_normal((1, source, source + 1, 2)).astype(np.float32)
    rows = np.minimum(np.floor(np.arange(size, dtype=np.float32) * np.float32(source / size)).astype(int), source - 1)
    cols_in, cols_out = source + 1, size + 2
    cols = np.minimum(np.floor(np.arange(cols_out, dtype=np.float32) * np.float32(cols_in / cols_out)).astype(int),
                      cols_in - 1)
    expected = x[:, rows][:, :, cols]
    like = np.zeros((1, size, cols_out, 1), np.float32)
    layer = NearestUpsample()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer([x, like])), expected)
    spec = tf.TensorSpec((None, None, None, None), tf.float32)
    dynamic = tf.function(lambda a, b: layer([a, b]), input_signature=[spec, spec])
    np.testing.assert_array_equal(dynamic(x, like).numpy(), expected)


def test_v2_with_unknown_input_size_is_the_static_model():
    """`input_shape=(None, None, 3)` through `predict` (a traced graph: sizes unknown, the gather path)."""
    static = GhostNetV2(0.5, input_shape=(65, 80, 3), classes=5, classifier_activation=None)
    dynamic = GhostNetV2(0.5, input_shape=(None, None, 3), classes=5, classifier_activation=None)
    dynamic.set_weights(static.get_weights())
    images = np.random.default_rng(3).uniform(0, 255, (2, 65, 80, 3)).astype(np.float32)
    np.testing.assert_allclose(dynamic.predict(images, verbose=0), static(images), atol=1e-6)


@pytest.mark.parametrize("family, width", sorted(TIMM_PARAMS))
def test_params_match_timm(family, width):
    info = profile(BUILDERS[family](width))
    assert info["params"] == TIMM_PARAMS[(family, width)]
    if family == "ghostnetv2":
        assert abs(info["macs"] - PAPER_MACS[width]) / PAPER_MACS[width] < 0.01


def test_v3_reparameterize_folds_every_branch(checkpoints, models):
    checkpoint, model = checkpoints["ghostnetv3_050"], models["ghostnetv3_050"]
    folded = reparameterize(model)
    assert not [layer.name for layer in folded.layers if "_rpr" in layer.name]
    assert profile(folded)["params"] == TIMM_DEPLOY_PARAMS[0.5]
    diff = checkpoint.max_diff(folded)
    print(f"\nghostnetv3_050 reparameterized: max |keras - timm| = {diff:.2e}")
    assert diff <= TOLERANCE
    images = recipe.normalize(recipe.synthetic_images(224, 224, 2, 5))
    np.testing.assert_allclose(folded(images), model(images, training=False), atol=2e-5)


def test_v3_checkpoint_loads_into_the_folded_form(checkpoints):
    checkpoint = checkpoints["ghostnetv3_100"]
    folded = checkpoint.build(weights=checkpoint.path, reparameterized=True)
    diff = checkpoint.max_diff(folded)
    print(f"\nghostnetv3_100 loaded folded: max |keras - timm| = {diff:.2e}")
    assert diff <= TOLERANCE


@pytest.mark.slow
def test_v3_fine_tuned_then_folded_is_the_same_function():
    """After training steps (BN statistics and weights moved) the folded model still computes the same."""
    model = GhostNetV3(0.5, input_shape=(64, 64, 3), classes=3, include_preprocessing=False, dropout_rate=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
                  run_eagerly=True)  # two steps: tracing the training graph would cost far more
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((8, 64, 64, 3)).astype(np.float32), rng.integers(0, 3, 8)
    before = model.get_layer("blocks.2.0.ghost1.cheap_rpr_skip").moving_variance.numpy()
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert not np.allclose(before, model.get_layer("blocks.2.0.ghost1.cheap_rpr_skip").moving_variance.numpy())
    folded = reparameterize(model)
    np.testing.assert_allclose(folded(images), model(images, training=False), atol=1e-5)


def test_wrong_family_or_form_is_named_and_sets_nothing(checkpoints, models, tmp_path):
    v2, v3 = checkpoints["ghostnetv2_100"], checkpoints["ghostnetv3_100"]
    folded_path = tmp_path / "folded.safetensors"
    save_file(fold_state_dict(v3.state), str(folded_path))
    cases = [(models["ghostnetv2_100"], v3.path, "this checkpoint is GhostNetV3 width 1.0 (the model is GhostNetV2 "
                                                 "width 1.0): build GhostNetV3(width=1.0)"),
             (models["ghostnetv2_100"], checkpoints["ghostnetv2_130"].path,
              "this checkpoint is width 1.3 (the model is width 1.0): build GhostNetV2(width=1.3)"),
             (models["ghostnetv3_100"], folded_path, "this checkpoint is GhostNetV3 width 1.0 in the folded inference "
                                                     "form (the model is GhostNetV3 width 1.0): build "
                                                     "GhostNetV3(width=1.0, reparameterized=True)")]
    for model, path, expected in cases:
        with pytest.raises(ValueError) as excinfo:
            load_weights(model, path)
        assert expected in one_line_error(excinfo)
    assert v2.max_diff(models["ghostnetv2_100"]) <= TOLERANCE  # the failed loads changed nothing


def test_incomplete_v3_branch_is_named(checkpoints):
    state = dict(checkpoints["ghostnetv3_050"].state)
    del state["blocks.4.0.ghost1.cheap_rpr_conv.1.bn1.running_var"]
    with pytest.raises(ValueError) as excinfo:
        gw.assign_state_dict(checkpoints["ghostnetv3_050"].build(reparameterized=True), state)
    assert "no blocks.4.0.ghost1.cheap_rpr_conv.1.bn1.running_var" in one_line_error(excinfo)


def test_bad_arguments_are_one_line_errors(models):
    with pytest.raises(ValueError) as excinfo:
        reparameterize(models["ghostnetv2_100"])
    assert "no re-parameterisable branches" in one_line_error(excinfo)
    with pytest.raises(ValueError, match="no ImageNet weights for ghostnetv3_050 \\(for ghostnetv3: ghostnetv3_100\\)"):
        GhostNetV3(width=0.5, weights="imagenet")
    with pytest.raises(ValueError, match=">= 33"):
        GhostNetV3(input_shape=(32, 64, 3))


@pytest.mark.parametrize("arch", ["ghostnetv2_100", "ghostnetv3_100"])
def test_imagenet_weights_by_name_for_every_family(arch, checkpoints, local_hub):
    """``create_model(name, weights="imagenet")`` fetches timm's hub file of that model (here a local file with
    the fixture's seeded weights) and gives timm's logits; V3 in its folded form."""
    from ghostnet_tf import create_model

    checkpoint = checkpoints[arch]
    local_hub(arch, checkpoint.path)
    model = create_model(arch, weights="imagenet", input_shape=(224, 224, 3), include_preprocessing=False,
                         classifier_activation=None)
    assert model.name == arch
    assert checkpoint.max_diff(model) <= TOLERANCE


@pytest.mark.slow
def test_port_v3_keeps_family_and_form(checkpoints, models, tmp_path, capsys):
    checkpoint = checkpoints["ghostnetv3_050"]
    out = tmp_path / "ghostnetv3_050.weights.h5"
    assert main(["port", str(checkpoint.path), "-o", str(out)]) == 0
    assert "GhostNetV3 width 0.5, 1000 classes" in capsys.readouterr().out
    load_weights(models["ghostnetv3_050"], out)
    assert checkpoint.max_diff(models["ghostnetv3_050"]) <= TOLERANCE


def test_v2_keras_file_round_trip(tmp_path):
    model = GhostNetV2(0.5, input_shape=(65, 80, 3), classes=4)
    path = tmp_path / "v2.keras"
    model.save(path)
    images = np.random.default_rng(2).uniform(0, 255, (1, 65, 80, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.models.load_model(path)(images), model(images))


def test_info_for_v2_and_v3(capsys):
    assert main(["info", "--family", "v3", "--width", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == TIMM_PARAMS[("ghostnetv3", 0.5)]
    assert main(["info", "--family", "v3", "--reparameterized", "--width", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == TIMM_DEPLOY_PARAMS[0.5]
    assert main(["info", "--family", "v2", "--reparameterized"]) == 2
    assert "applies to GhostNetV3" in capsys.readouterr().err


def test_zoo_has_v2_and_v3_outside_the_default_set():
    from android_bench import zoo

    assert not {"ghostnetv2_100", "ghostnetv3_100"} & {m.name for m in zoo.select()}
    v2, v3 = (entry.build((64, 64)) for entry in zoo.select(["ghostnetv2_100", "ghostnetv3_100"]))
    assert (v2.name, v3.name) == ("ghostnetv2_100", "ghostnetv3_100")
    assert v2.get_layer("blocks.2.0.ghost1.short_conv.4") is not None
    assert v3.get_layer("blocks.1.0.conv_dw").use_bias and not [l for l in v3.layers if "_rpr" in l.name]


@pytest.fixture(scope="module")
def v2_int8(tmp_path_factory):
    """GhostNetV2-0.5x at 80x96 (odd DFC upsampling at strides 16 and 32), int8, via the CLI."""
    out = tmp_path_factory.mktemp("v2_int8") / "v2.tflite"
    code = main(["convert", "--family", "v2", "--width", "0.5", "--input-size", "80x96", "-o", str(out),
                 "--calibration-steps", "8", "--eval-count", "4", "--report", str(out) + ".json", "--no-progress"])
    assert code == 0
    return out, json.loads(open(str(out) + ".json").read())


@pytest.mark.slow
def test_v2_int8_is_fully_int8(v2_int8):
    path, report = v2_int8
    assert report["model"]["name"] == "ghostnetv2_050" and report["model"]["family"] == "v2"
    assert report["audit"]["int8"] == {"ok": True, "offenders": [], "kept_float": []}
    assert all(check["ok"] for check in report["audit"]["hygiene"].values()), report["audit"]["hygiene"]
    assert report["audit"]["ops"]["LOGISTIC"] == 14  # one DFC gate per bottleneck but the first two
    # Independent of the audit code: every tensor of the file is int8 or int32 but the uint8 input and output,
    # and no requantization inside: the only QUANTIZE ops are the two uint8 edges.
    interpreter = make_interpreter(model_path=path, use_xnnpack=False)
    edges = {d["index"] for d in interpreter.get_input_details() + interpreter.get_output_details()}
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()
            if t["index"] not in edges} <= {"int8", "int32"}
    quantize_ops = [op for op in interpreter._get_ops_details() if op["op_name"] in ("QUANTIZE", "DEQUANTIZE")]
    assert len(quantize_ops) == 2 and all(set(op["inputs"]) & edges or set(op["outputs"]) & edges
                                          for op in quantize_ops)


@pytest.mark.slow
def test_v3_float32_export_is_the_keras_model(tmp_path):
    """The folded V3 (what `convert --family v3` builds), float32: the file computes what Keras computes."""
    model = GhostNetV3(0.5, input_shape=(80, 96, 3), reparameterized=True, classifier_activation=None)
    report = convert_and_verify(model, tmp_path / "v3.tflite", quantize="float32", eval_count=4, show_progress=False)
    # Logits of random weights: float rounding relative to their size (top-1 of near-ties would be luck).
    peak = np.abs(model.predict(np.full((1, 80, 96, 3), 128.0, np.float32), verbose=0)).max()
    assert report["fidelity"]["max_abs_error"] < 1e-5 * max(1.0, peak)


def test_list_models_and_the_cli_take_registered_names(capsys):
    from convert.cli import _resolve_model
    from ghostnet_tf import list_models
    from ghostnet_tf.cli import build_parser

    assert list_models("ghostnetv2_*") == ["ghostnetv2_100", "ghostnetv2_130", "ghostnetv2_160"]
    assert list_models("ghostnet*", pretrained=True) == ["ghostnet_100", "ghostnetv2_100", "ghostnetv2_130",
                                                         "ghostnetv2_160", "ghostnetv3_100"]
    assert len(list_models("repghostnet_*", pretrained=True)) == 8
    args = build_parser("ghostnet").parse_args(["convert", "--model", "ghostnetv3_100", "-o", "m.tflite"])
    _resolve_model(args)
    assert (args.family, args.width) == ("v3", 1.0)
    with pytest.raises(SystemExit) as exit_info:
        build_parser("ghostnet").parse_args(["convert", "--model", "ghostnet_999", "-o", "m.tflite"])
    assert exit_info.value.code == 2
    assert "unknown model 'ghostnet_999'; registered: ghostnet_050" in capsys.readouterr().err
