"""int8 on a *trained* GhostNet: the committed CIFAR-10 reference model (GhostNet-1.0x, float16 weights, its
input size and transform in the file's metadata) converted to full int8, checked on the committed 1,000 test
images against the float model.

Fixtures (tests/fixtures, made by tools/cifar10_reference.py from the run in the README):
cifar10_ghostnet_100.safetensors (the trained weights, float16), cifar10_test_1000.npz (100 test images per
class, with labels), cifar10_calibration_200.npz (20 training images per class), both at CIFAR's own 32x32.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from convert.calibration import image_source
from convert.evaluation import evaluate
from convert.predict import predict_images
from convert.inference import predict
from ghostnet_tf.cli import main
from ghostnet_tf.runtime import make_interpreter

from conftest import FIXTURES

WEIGHTS = FIXTURES / "cifar10_ghostnet_100.safetensors"
TEST_SET = FIXTURES / "cifar10_test_1000.npz"
CALIBRATION = FIXTURES / "cifar10_calibration_200.npz"
# Measured on these fixtures with TF 2.21 (README, "int8 on a trained GhostNet"): float 85.2 %, int8 85.5 %
# (+0.3 points on these 1,000 images), top-1 agreement 98.7 %, SQNR 26.2 dB. The conversion is deterministic;
# the bounds leave about 5 images (0.5 points) of room for other TensorFlow versions and kernels.
FLOAT_TOP1 = 85.2
INT8_TOP1 = 85.4  # `ghostnet eval` on the uint8-I/O file alone (a tied top score counts as a miss)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MAX_DROP = 0.2
MIN_AGREEMENT = 98.2
MIN_SQNR_DB = 25.0


@pytest.fixture(scope="module")
def app_file(tmp_path_factory):
    """The README's route from a checkpoint to an app-ready file: ``ghostnet port`` (the checkpoint's transform
    and class names go into the .keras), then ``ghostnet convert`` with its defaults (int8, uint8 I/O)."""
    folder = tmp_path_factory.mktemp("trained")
    keras_path, path, report = folder / "cifar.keras", folder / "int8.tflite", folder / "int8.json"
    assert main(["port", str(WEIGHTS), "-o", str(keras_path)]) == 0
    assert main(["convert", "--keras-model", str(keras_path), "-o", str(path), "--calibration", str(CALIBRATION),
                 "--calibration-steps", "200", "--eval-images", str(TEST_SET), "--eval-count", "1000",
                 "--report", str(report), "--no-progress"]) == 0
    return keras_path, path, json.loads(report.read_text())


@pytest.fixture(scope="module")
def trained(app_file):
    from convert.source import ModelSource

    source = ModelSource.from_file(str(app_file[0]))
    model, transform = source.model, source.transform
    with np.load(TEST_SET) as data:  # CIFAR's own 32x32 pixels, resized by the model's transform
        images = image_source(data["images"], transform.size, None, "test", 0, transform=transform).images
        labels = data["labels"]
    return model, images, labels, transform


@pytest.mark.slow
def test_trained_model_keeps_its_accuracy_in_int8(trained, app_file):
    model, images, labels, transform = trained
    assert transform.crop_pct == 1.0  # 32x32 CIFAR images are taken whole
    assert model.input_shape == (None, 64, 64, 3)  # the size the checkpoint records, kept by `ghostnet port`
    float_top1 = 100 * np.mean(model.predict(images, batch_size=250, verbose=0).argmax(1) == labels)
    assert float_top1 == pytest.approx(FLOAT_TOP1, abs=0.2)  # the trained weights, not near-uniform ones

    _, path, report = app_file
    assert report["audit"]["int8"]["ok"] and report["io"] == "uint8"
    assert report["calibration"]["count"] == 200
    assert not [w for w in report["warnings"] if "cannot be judged" in w or "fidelity" in w]
    assert report["fidelity"]["images"] == 1000
    assert report["fidelity"]["top1_agreement_pct"] >= MIN_AGREEMENT
    assert report["fidelity"]["sqnr_db"] >= MIN_SQNR_DB

    outputs = predict(make_interpreter(model_path=str(path), num_threads=2), images)
    int8_top1 = 100 * np.mean(outputs.argmax(1) == labels)
    assert float_top1 - int8_top1 <= MAX_DROP


@pytest.mark.slow
def test_the_file_alone_scores_and_names_classes(app_file, trained, tmp_path):
    """``ghostnet eval`` and MediaPipe from the .tflite alone: its metadata carries the 64x64 whole-image
    transform and the class names (no --crop-pct, no labels file)."""
    _, path, _ = app_file
    _, images, labels, _ = trained
    tflite = evaluate(str(TEST_SET), tflite=str(path), show_progress=False)
    assert tflite["transform"] == {"size": [64, 64], "crop_pct": 1.0, "interpolation": "bicubic"}
    assert tflite["models"][0]["top1_pct"] == pytest.approx(INT8_TOP1, abs=0.2)
    np.save(tmp_path / "images.npy", images.astype(np.uint8))  # the model's own 64x64 resize: MediaPipe keeps it
    done = subprocess.run([sys.executable, str(FIXTURES.parent / "clients" / "mediapipe_classify.py"), str(path),
                           str(tmp_path / "images.npy"), str(tmp_path / "out.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    top = json.loads((tmp_path / "out.json").read_text())["top"]
    assert [t["name"] for t in top[:3]] == [CLASSES[t["index"]] for t in top[:3]]
    # `ghostnet predict` on a 32x32 CIFAR image as a PNG: the file's 64x64 whole-image transform and its names.
    with np.load(TEST_SET) as data:
        image, label = data["images"][8], int(data["labels"][8])
    import tensorflow as tf

    (tmp_path / "image.png").write_bytes(tf.io.encode_png(image).numpy())
    predicted = predict_images([tmp_path / "image.png"], tflite=str(path), top=1)
    assert predicted["transform"]["size"] == [64, 64]
    assert predicted["predictions"][0]["top"][0]["label"] == CLASSES[top[8]["index"]] == CLASSES[label]
    # `ghostnet eval` counts a tied top score as a miss; MediaPipe picks one of the tied classes.
    hits = int(np.sum(np.array([t["index"] for t in top]) == labels))
    model = tflite["models"][0]
    eval_hits = round(model["top1_pct"] * len(labels) / 100)
    assert eval_hits <= hits <= eval_hits + model["top1_ties"]
