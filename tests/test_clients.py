"""The files in the user's app stack: MediaPipe Tasks' ImageClassifier (Android's standard API, the same C++
code), tflite-runtime 2.14 (older boards and apps) and LiteRT's CompiledModel, each a real client in a process
of its own, on files converted from the trained tiny CIFAR-10 classifier and the committed test images."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CIFAR_CALIBRATION, CIFAR_TEST
from convert import QUANTIZE_MODES
from convert.converter import FileOptions, convert_model
from convert.evaluation import evaluate
from convert.metadata import read
from convert.opversions import min_runtime_version, op_versions, parse_version
from ghostnet_tf.runtime import make_interpreter, quantize

CLIENTS = Path(__file__).resolve().parent / "clients"
LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Every mode's file, and int8 with int8 I/O (the one MediaPipe refuses).
FILES = {mode: dict(quantize=mode) for mode in QUANTIZE_MODES} | {"int8-io-int8": dict(quantize="int8", io="int8")}


@pytest.fixture(scope="module")
def files(trained_tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clients")
    return {name: convert_model(trained_tiny, folder / f"{name}.tflite", calibration=str(CIFAR_CALIBRATION),
                                calibration_steps=200, show_progress=False, **options)
            for name, options in FILES.items()}


@pytest.fixture(scope="module")
def test_images():
    with np.load(CIFAR_TEST) as data:  # 32x32, the tiny model's own size: no client resizes them
        return data["images"], data["labels"]


def litert_outputs(path, images):
    """Raw output tensors of LiteRT's Interpreter (the project's runtime) on [0, 255] images."""
    interpreter = make_interpreter(model_path=str(path), use_xnnpack=True)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for image in images:
        x = image[None].astype(np.float32)
        interpreter.set_tensor(source["index"], quantize(x, source) if source["dtype"] != np.float32 else x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0].copy())
    return np.stack(outputs)


def run_client(python, script, *argv):
    return subprocess.run([python, str(CLIENTS / script), *map(str, argv)], capture_output=True, text=True,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})


def mediapipe(path, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    done = run_client(sys.executable, "mediapipe_classify.py", path, tmp_path / "images.npy", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((tmp_path / "out.json").read_text())


@pytest.mark.parametrize("name", ["int8", "float32"])
def test_mediapipe_classifies_with_class_names_like_ghostnet_eval(name, files, test_images, tmp_path):
    images, labels = test_images
    result = mediapipe(files[name].path, images, tmp_path)
    assert "error" not in result, result
    index = np.array([t["index"] for t in result["top"]])
    assert [t["name"] for t in result["top"]] == [LABELS[i] for i in index]
    ours = litert_outputs(files[name].path, images)
    # Scores that tie at the top (uint8 outputs) may be ordered differently: compare where the top is unique.
    unique = np.sum(ours == ours.max(1, keepdims=True), axis=1) == 1
    assert unique.mean() > 0.9
    np.testing.assert_array_equal(index[unique], ours.argmax(1)[unique])
    # `ghostnet eval` counts a tied top score as a miss; MediaPipe picks one of the tied classes.
    tflite = evaluate(str(CIFAR_TEST), tflite=str(files[name].path), show_progress=False)["models"][0]
    hits, eval_hits = int(np.sum(index == labels)), round(tflite["top1_pct"] * len(labels) / 100)
    assert eval_hits <= hits <= eval_hits + tflite["top1_ties"]


def test_mediapipe_refuses_int8_inputs_as_documented(files, test_images, tmp_path):
    result = mediapipe(files["int8-io-int8"].path, test_images[0][:1], tmp_path)
    assert "got INT8" in result["error"]


def test_metadata_is_complete(files):
    for name, conversion in files.items():
        meta = read(conversion.path.read_bytes())
        assert meta["labels"] == list(LABELS) and meta["transform"] == {"size": [32, 32], "crop_pct": 1.0,
                                                                         "interpolation": "bicubic"}
        assert meta["input"]["default_size"] == [32, 32] and meta["input"]["color_space"] == "RGB"
        assert (meta["input"]["mean"], meta["input"]["std"]) == (([0.0], [1.0]) if conversion.io == "float32"
                                                                 else (None, None))
        assert meta["version"] and meta["author"] and meta["license"] and meta["description"]


def test_default_int8_file_takes_and_gives_uint8(files):
    audit = files["int8"].audit
    assert files["int8"].io == "uint8" and audit["int8"]["ok"]
    assert (audit["input"]["dtype"], audit["input"]["scale"], audit["input"]["zero_point"]) == ("uint8", 1.0, 0)
    assert audit["output"]["dtype"] == "uint8"


# tflite-runtime 2.14 against LiteRT 2.3's builtin kernels on the 1,000 test images, measured: float32 and
# float16 3.6e-7 / 3.0e-7 apart, int16x8 9.2e-5, dynamic 4.1e-3 (its activations are quantized at run time;
# 1 top-1 flip); int8 up to 3 output steps (on 94 images more than 1; 2 top-1 flips). Against LiteRT's
# XNNPACK kernels int8 differs by up to 6 steps (11 flips): the kernels round differently, not the file.
MAX_DIFFERENCE = {"float32": 1e-6, "float16": 1e-6, "int16x8": 2e-4, "dynamic": 5e-3, "int8": 3, "int8-io-int8": 3}
MAX_FLIPS = {"dynamic": 2, "int8": 3, "int8-io-int8": 3}


def test_every_file_runs_in_tflite_runtime_2_14(files, test_images, tflite_runtime_python, tmp_path):
    images = test_images[0]
    for name, conversion in files.items():
        assert parse_version(min_runtime_version(conversion.path.read_bytes())) <= (2, 14, 0), name
        interpreter = make_interpreter(model_path=str(conversion.path), use_xnnpack=False)
        source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        x = images.astype(np.float32)[:, None]
        inputs = np.stack([quantize(i, source)[0] if source["dtype"] != np.float32 else i[0] for i in x])
        np.save(tmp_path / "in.npy", inputs)
        done = run_client(tflite_runtime_python, "tflite_runtime_run.py", conversion.path, tmp_path / "in.npy",
                          tmp_path / "out.npy")
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
        ours = []
        for i in inputs:
            interpreter.set_tensor(source["index"], i[None])
            interpreter.invoke()
            ours.append(interpreter.get_tensor(target["index"])[0].copy())
        theirs, ours = np.load(tmp_path / "out.npy"), np.stack(ours)
        assert theirs.dtype == ours.dtype, name
        assert np.abs(theirs.astype(np.float64) - ours.astype(np.float64)).max() <= MAX_DIFFERENCE[name], name
        assert np.sum(theirs.argmax(1) != ours.argmax(1)) <= MAX_FLIPS.get(name, 0), name


def test_compiled_model_runs_the_uint8_file_identically(files, test_images, tmp_path):
    path, images = files["int8"].path, test_images[0][:50]
    np.save(tmp_path / "in.npy", images)
    done = run_client(sys.executable, "compiled_model_run.py", path, tmp_path / "in.npy", tmp_path / "out.npy")
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), litert_outputs(path, images))
    signatures = json.loads((tmp_path / "out.npy.json").read_text())
    assert signatures == {"serving_default": {"inputs": ["image"], "outputs": ["output_0"]}}


def test_every_file_keeps_the_serving_signature(files):
    for name, conversion in files.items():
        interpreter = make_interpreter(model_path=str(conversion.path))
        assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"],
                                                                        "outputs": ["output_0"]}}, name


def test_dynamic_range_file_is_per_tensor_for_old_runtimes(trained_tiny, files, tmp_path):
    """The default floor (2.14) keeps dense layers per tensor; a 2.17 floor lets them be per channel."""
    assert op_versions(files["dynamic"].path.read_bytes())["FULLY_CONNECTED"] < 12
    newer = convert_model(trained_tiny, tmp_path / "new.tflite", "dynamic", show_progress=False,
                          options=FileOptions(min_runtime="2.17"))
    assert op_versions(newer.path.read_bytes())["FULLY_CONNECTED"] == 12
    assert min_runtime_version(newer.path.read_bytes()) == "2.17.0"


def test_a_floor_the_file_cannot_meet_writes_nothing(trained_tiny, tmp_path):
    out = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=r"--min-runtime 1.0: the converted file needs TFLite runtime .* nothing "
                                         "written"):
        convert_model(trained_tiny, out, "float32", show_progress=False, options=FileOptions(min_runtime="1.0"))
    assert not out.exists()
