"""int8 on a *trained* GhostNet: the committed CIFAR-10 reference model (GhostNet-1.0x, float16 weights, its
input size and transform in the file's metadata) converted to full int8, checked on the committed 1,000 test
images against the float model.

Fixtures (tests/fixtures, made by tools/cifar10_reference.py from the run in the README):
cifar10_ghostnet_100.safetensors (the trained weights, float16), cifar10_test_1000.npz (100 test images per
class, with labels), cifar10_calibration_200.npz (20 training images per class), both at CIFAR's own 32x32.
"""
import json

import numpy as np
import pytest

from convert.api import convert_and_verify
from convert.calibration import image_source
from convert.inference import predict
from ghostnet_tf.runtime import make_interpreter

from conftest import FIXTURES

WEIGHTS = FIXTURES / "cifar10_ghostnet_100.safetensors"
TEST_SET = FIXTURES / "cifar10_test_1000.npz"
CALIBRATION = FIXTURES / "cifar10_calibration_200.npz"
# Measured on these fixtures with TF 2.21 (README, "int8 on a trained GhostNet"): float 85.2 %, int8 85.5 %
# (+0.3 points on these 1,000 images), top-1 agreement 98.7 %, SQNR 26.2 dB. The conversion is deterministic;
# the bounds leave about 5 images (0.5 points) of room for other TensorFlow versions and kernels.
FLOAT_TOP1 = 85.2
MAX_DROP = 0.2
MIN_AGREEMENT = 98.2
MIN_SQNR_DB = 25.0


@pytest.fixture(scope="module")
def trained():
    from safetensors import safe_open

    from ghostnet_tf import GhostNet
    from ghostnet_tf.preprocessing import Transform

    with safe_open(str(WEIGHTS), "np") as f:
        transform = Transform.from_json(json.loads(f.metadata()["transform"]))
    model = GhostNet(width=1.0, input_shape=(*transform.size, 3), classes=10, weights=str(WEIGHTS))
    model.ghostnet_transform = transform
    with np.load(TEST_SET) as data:  # CIFAR's own 32x32 pixels, resized by the model's transform
        images = image_source(data["images"], transform.size, None, "test", 0, transform=transform).images
        labels = data["labels"]
    return model, images, labels


@pytest.mark.slow
def test_trained_model_keeps_its_accuracy_in_int8(trained, tmp_path):
    model, images, labels = trained
    assert model.ghostnet_transform.crop_pct == 1.0  # 32x32 CIFAR images are taken whole
    float_top1 = 100 * np.mean(model.predict(images, batch_size=250, verbose=0).argmax(1) == labels)
    assert float_top1 == pytest.approx(FLOAT_TOP1, abs=0.2)  # the trained weights, not near-uniform ones

    path = tmp_path / "int8.tflite"
    report = convert_and_verify(model, path, quantize="int8", calibration=str(CALIBRATION), calibration_steps=200,
                                eval_images=str(TEST_SET), eval_count=1000, show_progress=False)
    assert report["audit"]["int8"]["ok"]
    assert report["calibration"]["count"] == 200
    assert not [w for w in report["warnings"] if "cannot be judged" in w or "fidelity" in w]
    assert report["fidelity"]["images"] == 1000
    assert report["fidelity"]["top1_agreement_pct"] >= MIN_AGREEMENT
    assert report["fidelity"]["sqnr_db"] >= MIN_SQNR_DB

    outputs = predict(make_interpreter(model_path=str(path), num_threads=2), images)
    int8_top1 = 100 * np.mean(outputs.argmax(1) == labels)
    assert float_top1 - int8_top1 <= MAX_DROP
