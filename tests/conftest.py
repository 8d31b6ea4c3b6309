"""Fixtures shared by the test modules: the tiny GhostModule model, image writers, the tiny converted
TFLite models and the stand-in phone (tests/fake_adb).

Every test and every fixture starts from a fixed random state (``seed_everything``), so no result depends on
the order the tests run in or on which earlier test happened to build a shared fixture first."""
import os
import random
import sys
import zlib
from pathlib import Path

import pytest

from fake_adb.models import tiny_models
from fake_adb.phone import make_elf, make_phone
from tiny import tiny_model as _tiny_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_SEED = 0


def seed_everything(seed):
    """Python, NumPy, and (once imported) Keras/TensorFlow with Keras's global seed generator."""
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Each fixture is built from a random state of its own (by its name), whenever it happens to be built."""
    seed_everything(zlib.crc32(fixturedef.argname.encode()) % 2 ** 31)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """The test body starts from the same state, after all of its fixtures were set up."""
    seed_everything(TEST_SEED)
    return (yield)


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
def trained_tiny():
    """The tiny classifier trained on CIFAR-10 (49.6 % test top-1 at 32x32; tools/cifar10_reference.py tiny) as a
    ModelSource, with the transform and class names recorded in its file: trained weights for the fast tests
    whose claims are about agreement or accuracy."""
    from convert.source import ModelSource

    return ModelSource.from_file(str(FIXTURES / "cifar10_tiny.keras"))


CIFAR_CALIBRATION = FIXTURES / "cifar10_calibration_200.npz"  # 20 training images per class, 32x32
CIFAR_TEST = FIXTURES / "cifar10_test_1000.npz"  # 100 test images per class, 32x32, with labels


@pytest.fixture(scope="session")
def arm_setup():
    """The ARM emulator's setup (``make arm``); without it the ARM tests skip, unless GHOSTNET_REQUIRE_ARM is set
    (``.ci/run`` sets it after running the setup, so in CI they run or fail, never skip)."""
    from android_bench.arm.emulator import Emulator, SetupError

    try:
        return Emulator.load()
    except SetupError as exc:
        if os.environ.get("GHOSTNET_REQUIRE_ARM"):
            pytest.fail(f"GHOSTNET_REQUIRE_ARM is set but {exc}")
        pytest.skip(f"the ARM emulator is not set up: `make arm` ({exc})")


TFLITE_RUNTIME_VENV = Path(__file__).resolve().parent.parent / ".venv-tflite-runtime"


@pytest.fixture(scope="session")
def tflite_runtime_python():
    """The Python of the tflite-runtime 2.14 venv (``make clients``: it needs Python <= 3.11 and numpy < 2, so
    it cannot share the test venv); without it these tests skip, unless GHOSTNET_REQUIRE_CLIENTS is set
    (``.ci/run`` sets it after ``make clients``)."""
    python = Path(os.environ.get("GHOSTNET_TFLITE_RUNTIME_PYTHON", TFLITE_RUNTIME_VENV / "bin" / "python"))
    if python.exists():
        return str(python)
    if os.environ.get("GHOSTNET_REQUIRE_CLIENTS"):
        pytest.fail(f"GHOSTNET_REQUIRE_CLIENTS is set but there is no tflite-runtime Python at {python}")
    pytest.skip(f"tflite-runtime is not set up: `make clients` (no {python})")


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """``local_hub(name, checkpoint, sha256=None)``: serve ``checkpoint`` as timm's hub file of the registered model
    ``name`` from a file:// URL (the real download path, no network), with the cache under tmp_path/"cache"; returns
    the path the download is cached at."""
    import dataclasses
    import shutil

    from ghostnet_tf import registry
    from ghostnet_tf import weights as gw

    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(registry, "HUB_URL", f"file://{hub}/{{tag}}.safetensors")
    monkeypatch.setattr(gw, "IMAGENET_CACHE_DIR", str(tmp_path / "cache"))

    def serve(name, checkpoint, sha256=None):
        entry = registry.MODELS[name]
        shutil.copyfile(checkpoint, hub / f"{entry.pretrained}.safetensors")
        monkeypatch.setitem(registry.MODELS, name, dataclasses.replace(entry, sha256=sha256))
        return tmp_path / "cache" / "models" / f"{entry.pretrained}.safetensors"

    return serve


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


