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

from ghostnet_tf import GhostNet, load_weights
from ghostnet_tf import weights as gw
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


def test_imagenet_weights_are_downloaded_cached_and_preprocessed(checkpoints, local_hub):
    # The "hub" is a file:// URL; the model takes [0, 255] images and normalises them itself.
    checkpoint = checkpoints["ghostnet_100"]
    cached = local_hub("ghostnet_100", checkpoint.path)
    model = GhostNet(weights="imagenet", input_shape=(None, None, 3), classifier_activation=None)
    assert cached.is_file() and cached.name == "ghostnet_100.in1k.safetensors"
    assert_parity(model, checkpoint, normalized=False)


def test_imagenet_offline_is_a_clear_error(local_hub, tmp_path):
    with pytest.raises(OSError) as excinfo:
        gw.imagenet_weights()  # nothing served
    assert "pass weights='/path/to/model.safetensors'" in one_line_error(excinfo)
    assert not (tmp_path / "cache" / "models" / "ghostnet_100.in1k.safetensors").exists()


def test_imagenet_weights_exist_only_where_timm_publishes_them():
    with pytest.raises(ValueError, match=r"no ImageNet weights for ghostnet_050 \(for ghostnet: ghostnet_100\)"):
        GhostNet(width=0.5, weights="imagenet")


def test_imagenet_download_is_verified_by_its_hash(checkpoints, local_hub, tmp_path):
    """The real download path against a local file: a pinned hash admits the file; a wrong one leaves nothing in
    the cache; a cached file that lost its hash is fetched again."""
    from ghostnet_tf.files import sha256_file

    checkpoint = checkpoints["ghostnet_100"]
    cached = local_hub("ghostnet_100", checkpoint.path, sha256="0" * 64)
    with pytest.raises(OSError) as excinfo:
        gw.imagenet_weights()
    assert f"expected {'0' * 64}: corrupted or replaced" in one_line_error(excinfo)
    assert list(cached.parent.iterdir()) == []  # no file, no temporary left behind
    pinned = sha256_file(checkpoint.path)
    local_hub("ghostnet_100", checkpoint.path, sha256=pinned)
    assert gw.imagenet_weights() == str(cached) and sha256_file(cached) == pinned
    cached.write_bytes(b"truncated")
    assert gw.imagenet_weights() == str(cached) and sha256_file(cached) == pinned


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
