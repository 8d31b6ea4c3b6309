"""Reliability of ``ghostnet convert``, ``eval`` and ``predict`` (issue 21): outputs published together and last,
bounded inputs, models and files these commands cannot handle refused before any work, and every failure one
line naming the input. Tiny models only: each conversion takes seconds."""
import errno
import json
import os

import numpy as np
import pytest


SIZE = (32, 32)


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """Saved .keras models: the tiny classifier, one with two Dense heads, one with two image inputs, and one
    with GhostNet's stem names (so the fold-normalization rewrite applies)."""
    import keras
    from keras import layers

    from ghostnet_tf.preprocessing import normalization_layer
    from tiny import tiny_model

    root = tmp_path_factory.mktemp("keras")
    tiny_model().save(root / "tiny.keras")
    image = keras.Input((*SIZE, 3), name="image")
    pooled = layers.GlobalAveragePooling2D()(image)
    keras.Model(image, [layers.Dense(4, name="a")(pooled), layers.Dense(3, name="b")(pooled)],
                name="two_heads").save(root / "two_heads.keras")
    second = keras.Input((*SIZE, 3), name="image2")
    pooled = layers.GlobalAveragePooling2D()(layers.Add()([image, second]))
    keras.Model([image, second], layers.Dense(4)(pooled), name="two_inputs").save(root / "two_inputs.keras")
    x = normalization_layer()(image)
    x = layers.ZeroPadding2D(1, name="conv_stem.pad")(x)
    x = layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv_stem")(x)
    x = layers.ReLU(name="act1")(layers.BatchNormalization(name="bn1")(x))
    x = layers.Dense(4, name="classifier")(layers.GlobalAveragePooling2D()(x))
    keras.Model(image, x, name="stem").save(root / "stem.keras")
    return root


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory, keras_files):
    """float32 .tflite files: the tiny classifier at 32x32 (with metadata), at 48x48, and a two-input model."""
    import keras
    import tensorflow as tf

    from convert import convert_model
    from tiny import tiny_model

    root = tmp_path_factory.mktemp("tflite")
    convert_model(keras.saving.load_model(keras_files / "tiny.keras"), root / "tiny.tflite", quantize="float32",
                  show_progress=False)
    convert_model(tiny_model(size=(48, 48)), root / "tiny48.tflite", quantize="float32", show_progress=False)
    two = keras.saving.load_model(keras_files / "two_inputs.keras")
    (root / "two_inputs.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(two).convert())
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_image):
    """A class-folder tree: 2 classes x 2 PNG images of 40x50."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(2):
            write_image(root / name / f"{i}.png", rng.integers(0, 256, (40, 50, 3)))
    return root


def one_error_line(cli, *argv):
    """Run ``ghostnet ARGV`` in process: exit 2, one error line (warnings aside), no traceback; return the line."""
    code, out, err = cli(*argv)
    assert code == 2, (out, err)
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# 1. convert publishes its outputs together and last; models it cannot handle are refused first

@pytest.mark.parametrize("name,message", [("two_heads", "2 outputs"), ("two_inputs", "2 inputs")])
def test_convert_refuses_several_outputs_or_inputs_before_any_work(cli, keras_files, tmp_path, name, message):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"the old file")
    line = one_error_line(cli, "convert", "--keras-model", keras_files / f"{name}.keras", "-o", out,
                          "--quantize", "float32", "--no-progress")
    assert message in line
    assert out.read_bytes() == b"the old file" and os.listdir(tmp_path) == ["m.tflite"]


def _old_outputs(tmp_path):
    out, report = tmp_path / "m.tflite", tmp_path / "r.json"
    out.write_bytes(b"old model")
    report.write_text("old report")
    return out, report


def test_convert_failing_after_conversion_leaves_the_old_output(cli, keras_files, tmp_path, monkeypatch):
    """A failure in the verification, after the file is converted, leaves the existing -o and --report as they were."""
    import convert.api

    def broken(*args, **kwargs):
        raise ValueError("fidelity check failed")

    monkeypatch.setattr(convert.api, "verify_model", broken)
    out, report = _old_outputs(tmp_path)
    line = one_error_line(cli, "convert", "--keras-model", keras_files / "tiny.keras", "-o", out, "--report", report,
                          "--quantize", "float32", "--no-progress")
    assert "fidelity check failed" in line
    assert out.read_bytes() == b"old model" and report.read_text() == "old report"
    assert sorted(os.listdir(tmp_path)) == ["m.tflite", "r.json"]


def test_convert_disk_full_at_the_report_publishes_neither(cli, keras_files, tmp_path, monkeypatch):
    """ENOSPC while writing the --report: neither the new .tflite nor a partial report appears."""
    import convert.converter

    real = convert.converter._write_bytes

    def full_disk(path, data):
        if str(path).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(convert.converter, "_write_bytes", full_disk)
    out, report = _old_outputs(tmp_path)
    line = one_error_line(cli, "convert", "--keras-model", keras_files / "tiny.keras", "-o", out, "--report", report,
                          "--quantize", "float32", "--no-progress")
    assert "No space left on device" in line and str(report) in line
    assert out.read_bytes() == b"old model" and report.read_text() == "old report"
    assert sorted(os.listdir(tmp_path)) == ["m.tflite", "r.json"]


def test_convert_publishes_the_file_and_the_report(cli, keras_files, tmp_path):
    out, report = _old_outputs(tmp_path)
    code, _, err = cli("convert", "--keras-model", keras_files / "tiny.keras", "-o", out, "--report", report,
                       "--quantize", "float32", "--no-progress")
    assert code == 0, err
    assert out.read_bytes()[4:8] == b"TFL3" and json.loads(report.read_text())["output"]["path"] == str(out)
    assert sorted(os.listdir(tmp_path)) == ["m.tflite", "r.json"]


# 2. input sizes are bounded on the command line and in the Python API

@pytest.mark.parametrize("command", ["convert", "eval"])
def test_input_size_is_bounded_on_the_command_line(cli, keras_files, data, tmp_path, command):
    argv = (["convert", "-o", tmp_path / "m.tflite"] if command == "convert" else ["eval", data])
    code, _, err = cli(*argv, "--keras-model", keras_files / "tiny.keras", "--input-size", "100000")
    assert code == 2 and "--input-size" in err and "2048" in err and not os.listdir(tmp_path)


@pytest.mark.parametrize("size", [(100000, 100000), (0, 32), (32.0, 32), (32,), "32"])
def test_input_size_is_bounded_in_the_python_api(tmp_path, size):
    from convert import ConversionSpec

    with pytest.raises(ValueError, match="input_size: expected \\(height, width\\) of integers from 1 to 2048"):
        ConversionSpec(input_size=size)


def test_evaluate_bounds_the_input_size(keras_files, data):
    from convert import evaluate

    with pytest.raises(ValueError, match="--input-size: expected"):
        evaluate(data, tflite=None, model=_load(keras_files / "tiny.keras"), input_size=(50000, 50000))


def _load(path):
    import keras

    return keras.saving.load_model(path)


# 3. convert's messages

def test_keep_float_of_a_rewritten_layer_names_the_rewrite(cli, keras_files, tmp_path):
    line = one_error_line(cli, "convert", "--keras-model", keras_files / "stem.keras", "-o", tmp_path / "m.tflite",
                          "--keep-float", "conv_stem", "--calibration-steps", "2", "--eval-count", "2",
                          "--no-progress")
    assert "fold-normalization" in line and "conv_stem_folded" in line and "--rewrite" in line
    assert not os.listdir(tmp_path)


def test_keep_float_of_the_rewritten_name_works(cli, keras_files, tmp_path):
    code, _, err = cli("convert", "--keras-model", keras_files / "stem.keras", "-o", tmp_path / "m.tflite",
                       "--keep-float", "conv_stem_folded", "--calibration-steps", "2", "--eval-count", "2",
                       "--no-progress", "--report", tmp_path / "r.json")
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["keep_float"]["layers"]


def test_fewer_calibration_images_than_asked_warns(cli, keras_files, data, tmp_path):
    code, _, err = cli("convert", "--keras-model", keras_files / "tiny.keras", "-o", tmp_path / "m.tflite",
                       "--calibration", data / "a", "--calibration-steps", "100", "--eval-count", "2",
                       "--no-progress", "--report", tmp_path / "r.json")
    assert code == 0, err
    warning = [line for line in err.splitlines() if "--calibration" in line and line.startswith("warning:")]
    assert len(warning) == 1 and "2 images" in warning[0] and "100" in warning[0], err
    report = json.loads((tmp_path / "r.json").read_text())
    assert [w for w in report["warnings"] if "--calibration" in w and "100" in w]


def test_unknown_layer_class_is_named(cli, tmp_path, monkeypatch):
    import keras

    @keras.saving.register_keras_serializable(package="reliability_test")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    image = keras.Input((*SIZE, 3))
    model = keras.Model(image, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(Twice()(image))))
    model.save(tmp_path / "custom.keras")
    registry = keras.saving.get_custom_objects()
    monkeypatch.delitem(registry, "reliability_test>Twice")
    line = one_error_line(cli, "convert", "--keras-model", tmp_path / "custom.keras", "-o", tmp_path / "m.tflite")
    assert "Twice" in line and "not a ghostnet_tf or Keras layer" in line and "--import-module" in line


@pytest.mark.parametrize("text,ok", [("1", True), ("0.875", True), ("1.0000005", False), ("0", False),
                                     ("nan", False), ("inf", False), ("x", False)])
def test_crop_pct_range_is_the_transforms(text, ok):
    """One parser (train, convert, eval) that says what the Transform says."""
    import argparse

    from ghostnet_tf.cliutil import parse_crop_pct as _crop_pct
    from ghostnet_tf.preprocessing import Transform

    if ok:
        assert Transform(SIZE, _crop_pct(text)).crop_pct == float(text)
        return
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be in .*1\]|expected a fraction") as info:
        _crop_pct(text)
    if text != "x":  # the option says what the Transform says
        with pytest.raises(ValueError) as transform_error:
            Transform(SIZE, float(text))
        assert str(info.value) in str(transform_error.value)


# 4. eval and predict: inputs they cannot use are refused in one line naming them

@pytest.mark.parametrize("command", ["eval", "predict", "convert"])
def test_labels_file_not_utf8(cli, data, keras_files, tflite_files, tmp_path, command):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"a/0.png 0\n\xff\xfe caf\xe9 1\n")
    argv = {"eval": ["eval", data, "--tflite", tflite_files / "tiny.tflite"],
            "predict": ["predict", data / "a" / "0.png", "--keras-model", keras_files / "tiny.keras"],
            "convert": ["convert", "--keras-model", keras_files / "tiny.keras", "-o", tmp_path / "m.tflite"]}[command]
    line = one_error_line(cli, *argv, "--labels", labels)
    assert str(labels) in line and "UTF-8" in line


@pytest.mark.parametrize("command", ["eval", "predict", "convert"])
def test_labels_file_that_is_a_device_or_huge(cli, data, keras_files, tflite_files, tmp_path, command):
    argv = {"eval": ["eval", data, "--tflite", tflite_files / "tiny.tflite"],
            "predict": ["predict", data / "a" / "0.png", "--keras-model", keras_files / "tiny.keras"],
            "convert": ["convert", "--keras-model", keras_files / "tiny.keras", "-o", tmp_path / "m.tflite"]}[command]
    (tmp_path / "zero").symlink_to("/dev/zero")
    assert "not a regular file" in one_error_line(cli, *argv, "--labels", tmp_path / "zero")
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: no disk used
    line = one_error_line(cli, *argv, "--labels", huge)
    assert str(huge) in line and "MB" in line


def test_eval_tflite_of_another_input_size(cli, data, keras_files, tflite_files):
    line = one_error_line(cli, "eval", data, "--tflite", tflite_files / "tiny48.tflite",
                          "--keras-model", keras_files / "tiny.keras", "--no-progress")
    assert "tiny48.tflite" in line and "48x48" in line and "32x32" in line


def test_eval_tflite_alone_at_another_input_size(cli, data, tflite_files):
    line = one_error_line(cli, "eval", data, "--tflite", tflite_files / "tiny48.tflite", "--input-size", "32",
                          "--no-progress")
    assert "--input-size" in line and "48x48" in line


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_tflite_with_two_inputs_is_refused(cli, data, tflite_files, command):
    argv = ["eval", data] if command == "eval" else ["predict", data / "a" / "0.png"]
    line = one_error_line(cli, *argv, "--tflite", tflite_files / "two_inputs.tflite")
    assert "two_inputs.tflite" in line and "2 inputs" in line and "1 output" in line


@pytest.mark.parametrize("command", ["eval", "predict"])
@pytest.mark.parametrize("name,message", [("two_heads", "2 outputs"), ("two_inputs", "2 inputs")])
def test_keras_model_with_several_outputs_or_inputs_is_refused(cli, data, keras_files, command, name, message):
    argv = ["eval", data, "--no-progress"] if command == "eval" else ["predict", data / "a" / "0.png"]
    assert message in one_error_line(cli, *argv, "--keras-model", keras_files / f"{name}.keras")


def test_eval_input_size_50000_is_refused_at_once(cli, data, tflite_files):
    code, _, err = cli("eval", data, "--tflite", tflite_files / "tiny.tflite", "--input-size", "50000")
    assert code == 2 and "--input-size" in err


@pytest.mark.parametrize("command", ["eval", "convert"])
def test_no_image_decodes_says_why(cli, keras_files, tflite_files, tmp_path, command):
    bad = tmp_path / "bad"
    (bad / "a").mkdir(parents=True)
    (bad / "a" / "x.png").write_bytes(b"not a png")
    (bad / "a" / "y.jpg").write_bytes(b"not a jpeg")
    argv = (["eval", bad, "--tflite", tflite_files / "tiny.tflite"] if command == "eval" else
            ["convert", "--keras-model", keras_files / "tiny.keras", "-o", tmp_path / "m.tflite", "--calibration", bad])
    line = one_error_line(cli, *argv, "--no-progress")
    assert "none of the 2 images" in line and "x.png" in line


@pytest.mark.parametrize("option", ["--keras-model", "--tflite", "IMAGE", "--calibration", "--eval-images", "DATA",
                                    "eval --tflite"])
def test_device_inputs_are_refused(cli, keras_files, tflite_files, data, tmp_path, option):
    device = tmp_path / ("zero.npz" if option == "DATA" else "zero.npy")
    device.symlink_to("/dev/zero")
    keras_model, tflite, image = keras_files / "tiny.keras", tflite_files / "tiny.tflite", data / "a" / "0.png"
    if option == "DATA":
        argv = ["eval", device, "--tflite", tflite]
    elif option == "eval --tflite":
        argv = ["eval", data, "--tflite", device]
    elif option in ("--keras-model", "--tflite", "IMAGE"):
        argv = ["predict", device if option == "IMAGE" else image,
                *(["--tflite", tflite] if option == "IMAGE" else [option, device])]
    else:
        argv = ["convert", "--keras-model", keras_model, "-o", tmp_path / "m.tflite", option, device]
    line = one_error_line(cli, *argv)
    assert "not a regular file" in line and str(device) in line


@pytest.mark.parametrize("name,message", [("two_inputs", "2 inputs and 1 output"),
                                          ("tiny48", r"takes inputs of shape \(48, 48, 3\), given \(32, 32, 3\)")])
def test_fidelity_refuses_a_tflite_it_would_feed_wrongly(keras_files, tflite_files, name, message):
    """The Python API's verification feeds input 0 of the file: another layout or size is refused, not run."""
    from convert.api import verify_model

    with pytest.raises(ValueError, match=message):
        verify_model(str(tflite_files / f"{name}.tflite"), _load(keras_files / "tiny.keras"), "float32", eval_count=2,
                     show_progress=False)


def test_eval_label_beyond_the_outputs_is_refused_before_evaluating(cli, tflite_files, tmp_path, monkeypatch):
    import convert.evaluation

    def never(*args, **kwargs):
        raise AssertionError("evaluated before checking the labels")

    monkeypatch.setattr(convert.evaluation, "predict", never)
    images = np.random.default_rng(0).integers(0, 256, (3, *SIZE, 3)).astype(np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 12]))
    line = one_error_line(cli, "eval", tmp_path / "d.npz", "--tflite", tflite_files / "tiny.tflite", "--no-progress")
    assert "d.npz" in line and "label 12" in line and "10 outputs" in line


@pytest.mark.slow  # a TensorFlow process of its own: 20-60 s here on a shared 2-core machine
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_convert_stopped_during_verification_leaves_the_old_file(keras_files, tmp_path, signal_name):
    """A real signal while the converted model is compared with Keras (after conversion, before publishing):
    the old -o stays, no temporary file is left beside it or in TMPDIR."""
    import signal
    import subprocess
    import sys

    out, temp = tmp_path / "out" / "m.tflite", tmp_path / "tmp"
    out.parent.mkdir()
    temp.mkdir()
    out.write_bytes(b"old model")
    held_out = tmp_path / "held_out.npy"  # at the model's size: taken as they are, no transform to wait for
    np.save(held_out, np.random.default_rng(0).integers(0, 256, (2000, *SIZE, 3)).astype(np.uint8))
    ghostnet = os.path.join(os.path.dirname(sys.executable), "ghostnet")
    process = subprocess.Popen([ghostnet, "convert", "--keras-model", str(keras_files / "tiny.keras"), "-o", str(out),
                                "--quantize", "float32", "--eval-images", str(held_out), "--eval-count", "2000"], stderr=subprocess.PIPE,
                               env={**os.environ, "TMPDIR": str(temp), "TF_CPP_MIN_LOG_LEVEL": "3"})
    seen = b""
    while b"comparing with Keras" not in seen:
        chunk = process.stderr.read1(4096)
        assert chunk, seen.decode(errors="replace")
        seen += chunk
    process.send_signal(getattr(signal, signal_name))
    process.stderr.read()
    code = process.wait(timeout=60)
    assert code == (130 if signal_name == "SIGINT" else -signal.SIGTERM)
    assert out.read_bytes() == b"old model" and os.listdir(out.parent) == ["m.tflite"]
    # TensorFlow's own autograph sources outlive a SIGTERM (Python runs no cleanup for it); ours do not.
    assert [name for name in os.listdir(temp) if not name.startswith("__autograph_generated_file")] == []
