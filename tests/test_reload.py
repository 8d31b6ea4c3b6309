"""Saved models travel: a .keras file of every family reloads in a fresh process after ``import ghostnet_tf``
alone (the package registers its layers on Keras import), with the same outputs."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ghostnet_tf import build_model

FORMS = {
    "v1": dict(family="v1", width=0.5),
    "v2": dict(family="v2", width=1.0),
    "v3-training": dict(family="v3", width=0.5, reparameterized=False),
    "v3-folded": dict(family="v3", width=0.5, reparameterized=True),
}
RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import {first}
    import keras
    model = keras.models.load_model(sys.argv[1])
    np.save(sys.argv[3], np.asarray(model(np.load(sys.argv[2]), training=False)))
""")


def reload_in_fresh_process(path, images, tmp_path, first="ghostnet_tf"):
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "out.npy"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", RELOAD.format(first=first), str(path),
                             str(tmp_path / "images.npy"), str(out)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return np.load(out)


@pytest.mark.parametrize("form", FORMS)
def test_saved_model_reloads_in_a_fresh_process(form, tmp_path):
    model = build_model(input_shape=(64, 64, 3), classes=10, **FORMS[form])
    path = tmp_path / f"{form}.keras"
    model.save(path)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    reloaded = reload_in_fresh_process(path, images, tmp_path)
    np.testing.assert_allclose(reloaded, np.asarray(model(images, training=False)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("first", ["keras, ghostnet_tf", "ghostnet_tf, tensorflow"])
def test_registration_in_any_import_order(first, tmp_path):
    """Keras loaded before ``import ghostnet_tf``, or after it through TensorFlow (which first only probes
    for Keras): the layers are registered either way."""
    model = build_model("v2", 1.0, input_shape=(64, 64, 3), classes=10)
    model.save(tmp_path / "v2.keras")
    images = np.zeros((1, 64, 64, 3), np.float32)
    reloaded = reload_in_fresh_process(tmp_path / "v2.keras", images, tmp_path, first=first)
    np.testing.assert_allclose(reloaded, np.asarray(model(images, training=False)), rtol=0, atol=1e-6)
