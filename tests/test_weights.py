"""Pretrained weights: parity with timm itself, the checkpoint formats, strictness, bad input, `ghostnet port`.

The expected logits come from timm (tests/fixtures/parity_*.npz, made by tools/make_parity_fixtures.py);
the weights are rebuilt here from the fixture's seeds with numpy alone. Nothing touches the network.
"""
import pickle
import sys
import types

import keras
import numpy as np
import pytest
from parity import TOLERANCE, load_checkpoints, one_line_error, recipe
from safetensors.numpy import save_file

from ghostnet_tf import GhostNet, create_model, list_models, load_weights
from ghostnet_tf import weights as gw
from ghostnet_tf.registry import MODELS
from ghostnet_tf.cli import main

ARCHS = tuple(recipe.WIDTHS)
CASES = [(arch, tuple(case)) for arch in ARCHS for case in recipe.CASES[arch]]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return load_checkpoints(ARCHS, tmp_path_factory)


@pytest.fixture(scope="module")
def models(checkpoints):
    """arch -> a model loaded through `load_weights`, any input size, pre-softmax logits, normalised input."""
    built = {}
    for arch, checkpoint in checkpoints.items():
        model = GhostNet(checkpoint.width, input_shape=(None, None, 3), include_preprocessing=False,
                         classifier_activation=None)
        load_weights(model, checkpoint.path)
        built[arch] = model
    return built


def run(model, images):
    """Eager inference: far faster here than tracing `predict` for each model and input size."""
    return keras.ops.convert_to_numpy(model(images, training=False))


def max_diff(model, images, expected):
    return float(np.abs(run(model, images) - expected).max())


def assert_parity(model, checkpoint, normalized=True):
    for case in checkpoint.manifest["cases"]:
        images, logits = checkpoint.case(*case)
        diff = max_diff(model, recipe.normalize(images) if normalized else images, logits)
        assert diff <= TOLERANCE, f"{model.name} {case}: max |keras - timm| = {diff:.2e}"


@pytest.mark.parametrize("arch, case", CASES, ids=[f"{a}-{c[0]}x{c[1]}" for a, c in CASES])
def test_logits_match_timm(checkpoints, models, arch, case):
    images, logits = checkpoints[arch].case(*case)
    diff = max_diff(models[arch], recipe.normalize(images), logits)
    print(f"\n{arch} {case[0]}x{case[1]}: max |keras - timm| = {diff:.2e}")
    assert diff <= TOLERANCE


def test_every_variable_is_set_from_its_own_key(checkpoints, models):
    # Each tensor of the checkpoint is distinct random data, so reading the model back proves the
    # one-to-one mapping and the inverse layouts that .weights.h5 reading relies on.
    back = gw.state_dict_from_model(models["ghostnet_050"])
    state = checkpoints["ghostnet_050"].state
    assert back.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)


def test_a_state_dict_read_back_saves_as_safetensors_unchanged(checkpoints, models, tmp_path):
    """safetensors writes an array's memory: transposed views written as they are would scramble the kernels."""
    save_file(gw.state_dict_from_model(models["ghostnet_050"]), str(tmp_path / "back.safetensors"))
    reloaded = GhostNet(0.5, input_shape=(None, None, 3), include_preprocessing=False, classifier_activation=None)
    load_weights(reloaded, tmp_path / "back.safetensors")
    assert_parity(reloaded, checkpoints["ghostnet_050"])


def test_imagenet_weights_are_downloaded_cached_and_preprocessed(checkpoints, local_hub):
    # The "hub" is a file:// URL; the model takes [0, 255] images and normalises them itself.
    checkpoint = checkpoints["ghostnet_100"]
    cached = local_hub("ghostnet_100", checkpoint.path)
    model = GhostNet(weights="imagenet", input_shape=(None, None, 3), classifier_activation=None)
    assert cached.is_file() and cached.name == "ghostnet_100.in1k.safetensors"
    assert_parity(model, checkpoint, normalized=False)


# The published models whose `weights="imagenet"` a test checks against timm's logits: ghostnet_100 above,
# ghostnetv2_100 and ghostnetv3_100 in test_ghostnet_v2_v3.py. Every other one (and any new) is loaded below.
LOGITS_TESTED = ("ghostnet_100", "ghostnetv2_100", "ghostnetv3_100")


@pytest.mark.parametrize("name", [n for n in list_models(pretrained=True) if n not in LOGITS_TESTED])
def test_imagenet_weights_of_every_other_published_model(name, local_hub, tmp_path):
    """``create_model(name, weights="imagenet")`` fetches that entry's hub file (here a local one, every tensor
    distinct seeded data) and sets every variable from it: the builder finds the entry from its width."""
    shapes = {k: v.shape for k, v in gw.state_dict_from_model(create_model(name, input_shape=(64, 64, 3))).items()}
    rng = np.random.default_rng(0)
    state = {k: rng.uniform(0.5, 1.5, shape).astype(np.float32) for k, shape in shapes.items()}
    save_file(state, str(tmp_path / "hub.safetensors"))
    local_hub(name, tmp_path / "hub.safetensors")
    loaded = gw.state_dict_from_model(create_model(name, weights="imagenet", input_shape=(64, 64, 3)))
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_imagenet_offline_is_a_clear_error(local_hub, tmp_path):
    with pytest.raises(OSError) as excinfo:
        gw.imagenet_weights(MODELS["ghostnet_100"])  # nothing served
    assert "pass weights='/path/to/model.safetensors'" in one_line_error(excinfo)
    assert not (tmp_path / "cache" / "models" / "ghostnet_100.in1k.safetensors").exists()


def test_imagenet_weights_exist_only_where_timm_publishes_them():
    with pytest.raises(ValueError, match=r"no ImageNet weights for ghostnet_050 \(for ghostnet: ghostnet_100\)"):
        GhostNet(width=0.5, weights="imagenet")


def test_width_mismatch_names_the_checkpoint_width_and_sets_nothing(checkpoints, models):
    model = models["ghostnet_100"]
    with pytest.raises(ValueError) as excinfo:
        load_weights(model, checkpoints["ghostnet_130"].path)
    message = one_line_error(excinfo)
    assert "this checkpoint is width 1.3" in message and "shape mismatches" in message
    assert_parity(model, checkpoints["ghostnet_100"])  # the failed load changed nothing


def test_missing_and_unexpected_keys_are_listed(checkpoints, models, tmp_path):
    state = dict(checkpoints["ghostnet_050"].state)
    del state["blocks.3.0.se.conv_reduce.bias"]
    state["blocks.3.0.se.fc.weight"] = np.zeros((3, 3), np.float32)
    path = tmp_path / "edited.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError) as excinfo:
        load_weights(models["ghostnet_050"], path)
    message = one_line_error(excinfo)
    assert "1 missing keys (blocks.3.0.se.conv_reduce.bias)" in message
    assert "1 unexpected keys (blocks.3.0.se.fc.weight)" in message


def test_num_batches_tracked_and_module_prefix_are_accepted(checkpoints, models):
    checkpoint = checkpoints["ghostnet_050"]
    state = {f"module.{k}": v for k, v in checkpoint.state.items()}
    state["module.bn1.num_batches_tracked"] = np.asarray(5, np.int64)
    wrapped = gw.unwrap_state_dict({"state_dict": state, "epoch": 3})
    gw.assign_state_dict(models["ghostnet_050"], wrapped)
    assert_parity(models["ghostnet_050"], checkpoint)


def test_another_architecture_is_named_as_such(models, tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32), "fc.weight": np.zeros((1000, 2048), np.float32)},
              str(path))
    with pytest.raises(ValueError) as excinfo:
        load_weights(models["ghostnet_050"], path)
    assert "this is not a GhostNet checkpoint" in one_line_error(excinfo)


def test_other_classes_keep_a_fresh_classifier_and_load_the_rest(checkpoints):
    checkpoint = checkpoints["ghostnet_050"]
    model = GhostNet(0.5, classes=10, weights=checkpoint.path)
    assert tuple(model.get_layer("classifier").kernel.shape) == (1280, 10)
    # conv_head is part of the loaded backbone: [O, I, 1, 1] -> [1, 1, I, O]
    np.testing.assert_array_equal(model.get_layer("conv_head").kernel.numpy(),
                                  checkpoint.state["conv_head.weight"].transpose(2, 3, 1, 0))


def test_include_top_false_loads_the_backbone(checkpoints, models):
    checkpoint = checkpoints["ghostnet_050"]
    backbone = GhostNet(0.5, include_top=False, include_preprocessing=False, input_shape=(None, None, 3),
                        weights=checkpoint.path)
    full = models["ghostnet_050"]
    features = keras.Model(full.input, full.get_layer("blocks.9.0.act1").output)
    images = recipe.normalize(recipe.synthetic_images(96, 96, 1, 7))
    np.testing.assert_array_equal(run(backbone, images), run(features, images))


def test_finetuned_checkpoint_with_other_classes_names_classes(checkpoints, models, tmp_path):
    state = dict(checkpoints["ghostnet_050"].state)
    state["classifier.weight"], state["classifier.bias"] = state["classifier.weight"][:10], state["classifier.bias"][:10]
    path = tmp_path / "ten.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError) as excinfo:
        load_weights(models["ghostnet_050"], path)
    message = one_line_error(excinfo)
    assert message.startswith("`classes`") and "classes=10" in message


def _truncated(source, path):
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", ["truncated", "not safetensors", "unsupported suffix", "h5 not hdf5",
                                  "pth not a pickle"])
def test_bad_files_are_one_line_value_errors(checkpoints, models, tmp_path, kind):
    source = checkpoints["ghostnet_050"].path
    path = {"truncated": lambda: _truncated(source, tmp_path / "t.safetensors"),
            "not safetensors": lambda: tmp_path / "x.safetensors",
            "unsupported suffix": lambda: tmp_path / "x.npz",
            "h5 not hdf5": lambda: tmp_path / "x.weights.h5",
            "pth not a pickle": lambda: tmp_path / "x.pth"}[kind]()
    if not path.exists():
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    if kind == "pth not a pickle":
        pytest.importorskip("torch")
    with pytest.raises(ValueError) as excinfo:
        load_weights(models["ghostnet_050"], path)
    assert one_line_error(excinfo).startswith("`weights`")
    assert_parity(models["ghostnet_050"], checkpoints["ghostnet_050"])


def test_keras_weights_not_from_port_are_refused(models, tmp_path):
    path = tmp_path / "plain.weights.h5"
    models["ghostnet_050"].save_weights(str(path))
    with pytest.raises(ValueError) as excinfo:
        load_weights(models["ghostnet_050"], path)
    assert "not written by `ghostnet port`" in one_line_error(excinfo)


def test_pth_without_torch_says_how_to_install_it(models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    path = tmp_path / "official.pth"
    path.write_bytes(b"PK")
    with pytest.raises(ImportError, match=r"pip install 'ghostnet-tf\[torch\]'"):
        load_weights(models["ghostnet_050"], path)


def test_weights_only_refusal_is_one_line(models, tmp_path, monkeypatch):
    # torch's own message for a pickle holding a Python object (torch 2.x), without needing torch.
    refusal = ("Weights only load failed. This file can still be loaded, to do so you have two options.\n"
               "\tWeightsUnpickler error: Unsupported global: GLOBAL __main__.Trainer was not an allowed global "
               "by default. Please use `torch.serialization.add_safe_globals([__main__.Trainer])`.\n\n"
               "Check the documentation of torch.load to learn more about types accepted by default.")

    def refuse(path, map_location, weights_only):
        assert map_location == "cpu" and weights_only is True
        raise pickle.UnpicklingError(refusal)

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=refuse))
    path = tmp_path / "trainer.pth"
    path.write_bytes(b"PK")
    with pytest.raises(ValueError) as excinfo:
        load_weights(models["ghostnet_050"], path)
    message = one_line_error(excinfo)
    assert f"{path} stores Python objects (__main__.Trainer), not just tensors" in message
    assert "GLOBAL" not in message and "Unpickler" not in message  # torch's internal wording stays out


@pytest.mark.parametrize("checkpoint", [{"state_dict": {"a": np.ones(2)}}, {"model": {"module.a": np.ones(2)}},
                                        {"module.a": np.ones(2)}])
def test_unwrap_state_dict_accepts_the_common_wrappings(checkpoint):
    assert list(gw.unwrap_state_dict(checkpoint)) == ["a"]


@pytest.mark.parametrize("checkpoint", [{"epoch": 3, "optimizer": {}}, [np.ones(2)], {}])
def test_unwrap_state_dict_refuses_what_is_not_one(checkpoint):
    with pytest.raises(ValueError, match="`weights`"):
        gw.unwrap_state_dict(checkpoint)


def test_torch_pickles_load_like_safetensors(checkpoints, models, tmp_path):
    torch = pytest.importorskip("torch")
    checkpoint = checkpoints["ghostnet_050"]
    tensors = {f"module.{k}": torch.from_numpy(v) for k, v in checkpoint.state.items()}
    path = tmp_path / "official.pth"
    torch.save({"state_dict": tensors, "epoch": 3}, path)
    load_weights(models["ghostnet_050"], path)
    assert_parity(models["ghostnet_050"], checkpoint)

    torch.save({"state_dict": tensors, "trainer": types.SimpleNamespace()}, path)
    with pytest.raises(ValueError, match="stores Python objects"):
        load_weights(models["ghostnet_050"], path)


def test_port_weights_h5_infers_the_width_and_reloads(checkpoints, models, tmp_path, capsys):
    checkpoint = checkpoints["ghostnet_050"]
    out = tmp_path / "ghostnet_050.weights.h5"
    assert main(["port", str(checkpoint.path), "-o", str(out)]) == 0
    assert "width 0.5, 1000 classes" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    load_weights(models["ghostnet_050"], out)
    assert_parity(models["ghostnet_050"], checkpoint)


def test_port_keras_model_is_the_whole_model(checkpoints, tmp_path):
    checkpoint = checkpoints["ghostnet_050"]
    out = tmp_path / "ghostnet_050.keras"
    assert main(["port", str(checkpoint.path), "-o", str(out), "--width", "0.5"]) == 0
    model = keras.models.load_model(out)
    images, logits = checkpoint.case(*checkpoint.manifest["cases"][0])
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # the saved model ends in softmax
    assert np.abs(run(model, images) - expected).max() <= TOLERANCE


@pytest.mark.parametrize("args, message", [
    (["{bad}", "-o", "{out}.weights.h5"], "cannot read"),
    (["{nan}", "-o", "{out}.keras"], "holds NaN or infinite values in"),
    (["{other}", "-o", "{out}.keras"], "is not a GhostNet checkpoint (no conv_stem.weight or blocks.9.0.conv.weight "
                                       "among its keys fc.bias, fc.weight)"),
    (["{src}", "-o", "{src}"], "is the same file as src"),
    (["{src}", "-o", "{out}.h5"], "`output` must end in .weights.h5 or .keras"),
    (["{src}", "-o", "{out}.keras", "--width", "1.0"], "this checkpoint is width 0.5"),
])
def test_port_failures_write_nothing(checkpoints, tmp_path, capsys, args, message):
    bad = tmp_path / "src" / "bad.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    out.mkdir()
    nan = {k: np.full(v.shape, np.nan, np.float32) for k, v in checkpoints["ghostnet_050"].state.items()}
    save_file(nan, str(tmp_path / "src" / "nan.safetensors"))
    save_file({"fc.weight": np.ones((2, 3), np.float32), "fc.bias": np.ones(2, np.float32)},
              str(tmp_path / "src" / "other.safetensors"))
    fill = {"bad": bad, "src": checkpoints["ghostnet_050"].path, "out": out / "model",
            "nan": tmp_path / "src" / "nan.safetensors", "other": tmp_path / "src" / "other.safetensors"}
    assert main(["port", *(a.format(**fill) for a in args)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(out.iterdir()) == []


def test_imagenet_download_is_verified_by_its_hash(checkpoints, local_hub):
    """The real download path against a local file: a pinned hash admits the file; a wrong one leaves nothing in
    the cache; a cached file that lost its hash is fetched again."""
    from ghostnet_tf.files import sha256_file

    checkpoint = checkpoints["ghostnet_100"]
    cached = local_hub("ghostnet_100", checkpoint.path, sha256="0" * 64)
    with pytest.raises(OSError) as excinfo:
        gw.imagenet_weights(MODELS["ghostnet_100"])
    assert f"expected {'0' * 64}: corrupted or replaced" in one_line_error(excinfo)
    assert list(cached.parent.iterdir()) == []  # no file, no temporary left behind
    pinned = sha256_file(checkpoint.path)
    local_hub("ghostnet_100", checkpoint.path, sha256=pinned)
    assert gw.imagenet_weights(MODELS["ghostnet_100"]) == str(cached) and sha256_file(cached) == pinned
    cached.write_bytes(b"truncated")
    assert gw.imagenet_weights(MODELS["ghostnet_100"]) == str(cached) and sha256_file(cached) == pinned


def test_an_incomplete_download_is_refused(tmp_path):
    """Fewer bytes than the server announced (a dropped connection) never reach the cache."""
    import http.server
    import threading

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Short)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        with pytest.raises(OSError, match="stopped after 10 of 1000 bytes"):
            gw.download(f"http://127.0.0.1:{server.server_port}/w.safetensors", tmp_path / "w.safetensors")
    finally:
        thread.join(10)
        server.server_close()
    assert list(tmp_path.iterdir()) == []
