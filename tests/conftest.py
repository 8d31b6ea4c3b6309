"""Fixtures shared by the test modules: the tiny GhostModule model, image writers, the tiny converted
TFLite models and the stand-in phone (tests/fake_adb)."""
import os
from pathlib import Path

import pytest

from fake_adb.models import tiny_models
from fake_adb.phone import make_elf, make_phone

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_SIZE = (32, 32)


def _tiny_model(preprocessing=True, extra_layer=None, classes=10):
    """A small network built from GhostModule (the issue: 'any Keras model built with GhostModule')."""
    import keras
    from keras import layers

    from ghostnet_tf.layers import GhostModule
    from ghostnet_tf.preprocessing import normalization_layer

    inputs = keras.Input((*TINY_SIZE, 3), name="image")
    x = normalization_layer()(inputs) if preprocessing else inputs
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    if extra_layer is not None:
        x = extra_layer(x)
    x = GhostModule(16, name="ghost1")(x)
    x = GhostModule(128, use_relu=False, name="ghost2")(x)  # big enough for dynamic-range quantization
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, x, name="tiny")


def _write_image(path, array):
    """Encode an (H, W, 3) array as PNG or JPEG (by suffix) with TensorFlow's encoders."""
    import numpy as np
    import tensorflow as tf

    array = tf.constant(np.asarray(array, np.uint8))
    data = tf.io.encode_png(array) if str(path).endswith(".png") else tf.io.encode_jpeg(array)
    tf.io.write_file(str(path), data)


@pytest.fixture(scope="session")
def tiny_model():
    """The builder of the tiny GhostModule model (32x32 RGB in [0, 255] -> 10 classes by default)."""
    return _tiny_model


@pytest.fixture(scope="session")
def write_image():
    return _write_image


@pytest.fixture(scope="session")
def photo():
    """A real ImageNet photo, 256x333 (height x width), copied from the project's sample set into tests/fixtures."""
    return FIXTURES / "n02006656_spoonbill.JPEG"


@pytest.fixture(scope="session")
def models():
    """{"float": Path, "int8": Path}: two tiny converted 32x32x3 -> 10 models."""
    return tiny_models()


@pytest.fixture
def binary(tmp_path):
    return make_elf(tmp_path / "android_aarch64_benchmark_model")


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """Factory: a fake phone first on PATH (options: devices, thermal); returns its device folder."""
    def make(**options):
        env = make_phone(tmp_path, **options)
        monkeypatch.setenv("PATH", env.pop("BIN") + os.pathsep + os.environ["PATH"])
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env["FAKE_ADB_ROOT"]
    return make


@pytest.fixture
def cli(capsys):
    """Run ``ghostnet ARGV`` in process: (exit status, stdout, stderr)."""
    from ghostnet_tf.cli import main

    def run(*argv):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


@pytest.fixture
def cli_error(cli):
    """Run ``ghostnet ARGV`` expecting bad input: exit 2 and one error line (besides warnings), which is returned."""
    def run(*argv):
        code, out, err = cli(*argv)
        assert code == 2, err
        lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("ghostnet: error:"), err
        return lines[0]
    return run


