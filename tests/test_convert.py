"""The converter: every mode on a tiny GhostModule model (in process), one full-size GhostNet-1.0x/224 int8
conversion through the CLI (subprocess, as the benchmark calls it), the int8 audit, fidelity, bad input."""
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import layers, ops

from convert import (ConversionReport, ConversionSpec, FileOptions, convert, convert_and_verify, convert_model,
                     verify_model)
from convert.calibration import image_source, synthetic_images
from ghostnet_tf.preprocessing import Transform, load_image, normalization_layer, resize_and_crop
from ghostnet_tf.runtime import make_interpreter

from conftest import CIFAR_CALIBRATION, CIFAR_TEST

SIZE = (32, 32)


@keras.saving.register_keras_serializable(package="test_convert")
class Sine(layers.Layer):
    """An op TFLite has only in float: the converter leaves it float32 inside an int8 graph."""

    def call(self, x):
        return ops.sin(x)


MODES = [("float32", "float32"), ("float16", "float32"), ("dynamic", "float32"),
         ("int8", "int8"), ("int8", "uint8"), ("int8", "float32")]


@pytest.fixture(scope="module")
def model(tiny_model):
    """Random weights, so it ends in logits: agreement of near-uniform softmax outputs would be luck."""
    return tiny_model(activation=None)


@pytest.fixture(scope="module")
def reports(model, tmp_path_factory):
    """One conversion per mode of the same tiny model, shared by the tests below."""
    out = tmp_path_factory.mktemp("modes")
    return {(q, io): convert_and_verify(model, out / f"{q}_{io}.tflite", quantize=q, io=io, calibration_steps=16,
                                        eval_count=16, show_progress=False)
            for q, io in MODES}


def keras_and_tflite(model, path, images):
    """Outputs of Keras and of the .tflite file on the same pixels, computed here with the raw interpreter."""
    interpreter = make_interpreter(model_path=path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        x = image[None]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            x = np.round(x / scale + zero)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0].astype(np.float64)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        results.append(y)
    return model.predict(images, verbose=0), np.stack(results)


@pytest.mark.parametrize("quantize,io", MODES)
def test_every_mode_converts_and_runs(reports, quantize, io):
    report = reports[(quantize, io)]
    interpreter = make_interpreter(model_path=report["output"]["path"])
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    expected_dtype = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32}[io]
    assert inp["dtype"] == expected_dtype and out["dtype"] == expected_dtype
    assert list(inp["shape"]) == [1, *SIZE, 3]  # batch fixed to 1
    assert report["output"]["size_bytes"] == os.path.getsize(report["output"]["path"])
    dtypes = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    if quantize == "float32":
        assert "int8" not in dtypes and "float16" not in dtypes
    elif quantize == "float16":
        assert "float16" in dtypes
    elif quantize == "dynamic":
        assert "int8" in dtypes and "float32" in dtypes
    assert report["seconds"]["total"] > 0 and report["seconds"]["export"] > 0
    assert all(check["ok"] for check in report["audit"]["hygiene"].values()), report["audit"]["hygiene"]


def test_int8_graph_has_only_int8_tensors(reports):
    """Checked here from the interpreter's tensor list, not through the audit code."""
    for io in ("int8", "uint8", "float32"):
        report = reports[("int8", io)]
        interpreter = make_interpreter(model_path=report["output"]["path"], use_xnnpack=False)
        edges = {d["index"] for d in interpreter.get_input_details() + interpreter.get_output_details()}
        ops_ = interpreter._get_ops_details()
        inner = [t for op in ops_ for t in [*op["inputs"], *op["outputs"]] if t >= 0 and t not in edges]
        details = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
        kinds = {details[t] for t in inner}
        assert kinds <= {"int8", "int32"}, (io, kinds)
        converters = [op for op in ops_ if op["op_name"] in ("QUANTIZE", "DEQUANTIZE")]
        assert len(converters) == {"int8": 0, "uint8": 2, "float32": 2}[io]
        assert report["audit"]["int8"] == {"ok": True, "offenders": [], "kept_float": []}
        assert report["audit"]["ops"]["CONV_2D"] == 3  # stem + two GhostModule primary convs: BN folded


def test_uint8_input_takes_raw_pixels(model, reports):
    report = reports[("int8", "uint8")]
    interpreter = make_interpreter(model_path=report["output"]["path"])
    assert interpreter.get_input_details()[0]["quantization"] == (1.0, 0)
    assert report["audit"]["input"]["scale"] == 1.0 and report["audit"]["input"]["zero_point"] == 0
    assert "straight in" in report["input_note"]
    # int8 input: the same scale, zero-point -128
    assert reports[("int8", "int8")]["audit"]["input"]["zero_point"] == -128
    pixels = synthetic_images(8, SIZE, seed=7).images
    reference, converted = keras_and_tflite(model, report["output"]["path"], pixels)
    cosine = np.sum(reference * converted, 1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(converted, axis=1)
    assert cosine.min() > 0.95


def test_fidelity_report(model, reports):
    fields = {"images", "top1_agreement_pct", "cosine_mean", "max_abs_error", "sqnr_db", "reference_peak_mean",
              "classes"}
    for report in reports.values():
        assert fields <= set(report["fidelity"]) and report["fidelity"]["images"] == 16
        assert report["eval_images"]["source"] == "built-in"
        json.dumps(report, allow_nan=False, default=str)  # machine-readable: no NaN/inf
        # The reported figures, recomputed here from the raw interpreter's outputs on the same images.
        images = synthetic_images(16, SIZE, 1).images  # the built-in held-out set (seed 1)
        reference, converted = keras_and_tflite(model, report["output"]["path"], images)
        agreement = 100.0 * np.mean(reference.argmax(1) == converted.argmax(1))
        cosine = np.sum(reference * converted, 1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(converted,
                                                                                                        axis=1)
        assert report["fidelity"]["top1_agreement_pct"] == pytest.approx(agreement)
        assert report["fidelity"]["cosine_mean"] == pytest.approx(cosine.mean(), abs=1e-6)
    float32 = reports[("float32", "float32")]
    reference, converted = keras_and_tflite(model, float32["output"]["path"], synthetic_images(4, SIZE, 1).images)
    tolerance = 1e-5 * max(1.0, np.abs(reference).max())  # float rounding, relative to the logits' size
    assert np.abs(reference - converted).max() < tolerance
    assert float32["fidelity"]["max_abs_error"] < tolerance
    # The API re-checks a written file the same way.
    again = verify_model(float32["output"]["path"], model, "float32", eval_count=16, show_progress=False)
    assert again["audit"] == float32["audit"] and again["fidelity"] == float32["fidelity"]
    int8 = reports[("int8", "int8")]["fidelity"]
    assert int8["max_abs_error"] > float32["fidelity"]["max_abs_error"]  # reported, not assumed equal
    # float32 may match exactly (SQNR None: no error at all); int8 always carries rounding noise.
    assert 10.0 < int8["sqnr_db"] < (float32["fidelity"]["sqnr_db"] or math.inf)


def test_calibration_and_eval_sets_differ():
    calibration = image_source(None, SIZE, 4, "--calibration", seed=0)
    evaluation = image_source(None, SIZE, 4, "--eval-images", seed=1)
    again = image_source(None, SIZE, 4, "--calibration", seed=0)
    np.testing.assert_array_equal(calibration.images, again.images)  # deterministic
    assert not any(np.array_equal(a, b) for a in calibration.images for b in evaluation.images)
    assert calibration.images.min() == 0 and calibration.images.max() == 255


def test_resize_and_crop_geometry(tmp_path, write_image):
    """A 100x200 image, black left half, white right: short side -> 36 (32/0.875), crop the center 32x32."""
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255
    out = resize_and_crop(image, (32, 32))
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    # The resized image is 36x72: the crop spans columns 20..51, the edge at 36 lands on crop column 16.
    assert (out[:, :14] == 0).all() and (out[:, 18:] == 255).all()
    write_image(tmp_path / "a.png", image)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", (32, 32)), out)


def test_calibration_folder_skips_corrupt_images(model, tmp_path, write_image):
    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(folder / f"{i}.{'png' if i % 2 else 'jpg'}", rng.integers(0, 256, (40, 48, 3)))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    images = image_source(str(tmp_path / "photos"), SIZE, 10, "--calibration", seed=0)
    assert images.images.shape == (3, *SIZE, 3) and images.skipped == 1
    # --calibration-steps 2 takes the first two files in sorted order: 0.jpg, 1.png
    first_two = image_source(str(tmp_path / "photos"), SIZE, 2, "--calibration", seed=0).images
    np.testing.assert_array_equal(first_two, [load_image(folder / "0.jpg", SIZE), load_image(folder / "1.png", SIZE)])


@pytest.mark.parametrize("array,message", [
    (np.zeros((4, 16, 16, 3), np.uint8), "shape"),
    (np.zeros((4, 32, 32, 3), np.int64), "dtype"),
    (np.full((4, 32, 32, 3), 300.0, np.float32), "expected pixel values in [0, 255]"),
    (np.full((4, 32, 32, 3), 0.5, np.float32), "[0, 1]"),
    (np.full((4, 32, 32, 3), -1.0, np.float32), "normalized"),
])
def test_bad_calibration_arrays(tmp_path, array, message):
    path = tmp_path / "cal.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match="--calibration") as info:
        image_source(str(path), SIZE, 10, "--calibration", seed=0)
    assert message in str(info.value)


def test_calibration_npz(tmp_path):
    np.savez(tmp_path / "one.npz", images=np.full((3, 32, 32, 3), 7, np.uint8), other=np.zeros(3))
    assert image_source(str(tmp_path / "one.npz"), SIZE, 10, "--calibration", seed=0).images.shape[0] == 3
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(ValueError, match="expected one array"):
        image_source(str(tmp_path / "two.npz"), SIZE, 10, "--calibration", seed=0)


def test_arrays_of_another_size_go_through_the_models_transform(tmp_path):
    """32x32 CIFAR images for a 64x64 model: resized like image files (the model's transform), not refused."""
    from ghostnet_tf.preprocessing import Transform

    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "small.npy", images)
    transform = Transform((64, 64), crop_pct=1.0)
    got = image_source(str(tmp_path / "small.npy"), (64, 64), 2, "--calibration", seed=0, transform=transform).images
    assert got.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(got[1], resize_and_crop(images[1], (64, 64), transform))
    with pytest.raises(ValueError, match=r"expected RGB images of shape \(N, 64, 64, 3\)"):
        image_source(str(tmp_path / "small.npy"), (64, 64), 2, "--calibration", seed=0)


def test_float_only_op_is_named_and_nothing_written(tmp_path, tiny_model):
    path = tmp_path / "sine.tflite"
    with pytest.raises(ValueError, match="SIN") as info:
        convert_model(tiny_model(extra_layer=Sine(name="sine")), path, quantize="int8", calibration_steps=4,
                      show_progress=False)
    assert "nothing written" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_hygiene_flags_unfoldable_batch_norm(tmp_path):
    """BN after global pooling has no conv to fold into: a MUL+ADD pair is left and reported; the
    input normalization (SUB+MUL at the graph input) is not."""
    inputs = keras.Input((*SIZE, 3))
    x = layers.Conv2D(8, 3, strides=2, use_bias=False)(normalization_layer()(inputs))
    x = layers.BatchNormalization(name="bn_after_pool")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
    for weight in model.get_layer("bn_after_pool").weights:
        weight.assign(np.linspace(0.5, 1.5, 8, dtype="float32"))
    report = convert_and_verify(model, tmp_path / "m.tflite", quantize="float32", eval_count=2, show_progress=False)
    offenders = report["audit"]["hygiene"]["bn_folded"]["offenders"]
    assert [o["ops"] for o in offenders] == ["MUL+ADD"] and "bn_after_pool" in offenders[0]["tensor"]
    assert report["audit"]["hygiene"]["activations_fused"]["ok"]
    assert any("bn folded failed at 1 place" in w for w in report["warnings"])


class InverseErf(layers.Layer):
    """A TensorFlow op with no TFLite builtin at all."""

    def call(self, x):
        return ops.erfinv(ops.tanh(x) * 0.5)


def test_op_without_tflite_kernel_is_named(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="no TFLite builtin op for tf.Erfinv"):
        convert_model(tiny_model(extra_layer=InverseErf()), tmp_path / "m.tflite", quantize="float32",
                      show_progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")  # inside TF's QuantizationDebugger
def test_per_layer_errors(model, tmp_path):
    report = convert_and_verify(model, tmp_path / "m.tflite", per_layer=True, calibration_steps=8, eval_count=4,
                                show_progress=False)
    rows = report["per_layer"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= {row["op"] for row in rows}
    errors = [row["rmse_over_scale"] for row in rows]
    assert errors == sorted(errors, reverse=True)
    # In units of each tensor's quantization step: uniform rounding noise is 1/sqrt(12) = 0.29 of a step,
    # and a concatenation of int8 tensors adds none (up to float error of the reference).
    assert 0.2 < float(np.median(errors)) < 0.4
    # The debugger sees the graph that was exported: ghost1 (8 intrinsic channels) in its fused form without
    # a concat, so only ghost2's concatenation is left, as in the written file.
    concatenations = [row["rmse_over_scale"] for row in rows if row["op"] == "CONCATENATION"]
    assert len(concatenations) == report["audit"]["ops"]["CONCATENATION"] == 1 and max(concatenations) < 1e-3


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_one_export_and_one_image_load_serve_every_stage(model, tmp_path, monkeypatch):
    """convert -> per-layer -> fidelity share the SavedModel and the image sets: each is made once."""
    from convert import calibration, converter

    calls = {"export": 0, "images": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(converter, "export_saved_model", counted("export", converter.export_saved_model))
    monkeypatch.setattr(calibration, "synthetic_images", counted("images", calibration.synthetic_images))
    report = convert(model, tmp_path / "m.tflite", ConversionSpec(per_layer=True, calibration_steps=8, eval_count=4),
                     show_progress=False)
    assert calls == {"export": 1, "images": 2}  # one export; the calibration and the held-out set
    assert report.per_layer and report.fidelity["images"] == 4 and report.calibration["count"] == 8
    assert ConversionReport.from_json(json.loads(json.dumps(report.to_json()))) == report
    assert report.format().startswith(f"{model.name} -> {tmp_path / 'm.tflite'}")


def test_spec_key_names_what_changes_the_file():
    base = ConversionSpec()
    assert base.key() == ConversionSpec(quantize="int8", calibration_steps=100).key()
    assert len({base.key(), ConversionSpec(io="int8").key(), ConversionSpec(calibration_steps=8).key(),
                ConversionSpec(eval_count=8).key(), ConversionSpec(rewrite=()).key(),
                ConversionSpec(file=FileOptions(license="MIT")).key()}) == 6
    # Calibration does not change a float file, so it does not change its key.
    assert ConversionSpec("float32", calibration_steps=8).key() == ConversionSpec("float32").key()
    images = synthetic_images(2, SIZE, 0).images
    assert ConversionSpec(calibration=images).key() == ConversionSpec(calibration=images.copy()).key()
    assert ConversionSpec(calibration=images).key() != ConversionSpec(calibration=images[::-1]).key()


@pytest.mark.parametrize("options, message", [
    ({"quantize": "int4"}, "--quantize: expected one of"),
    ({"quantize": "float16", "io": "uint8"}, "--io uint8: integer inputs/outputs need --quantize int8"),
    ({"quantize": "dynamic", "per_layer": True}, "--per-layer: the per-layer quantization error needs"),
    ({"file": FileOptions(min_runtime="two")}, "--min-runtime"),
])
def test_spec_refuses_impossible_combinations_when_made(options, message):
    with pytest.raises(ValueError, match=message):
        ConversionSpec(**options)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("keras")
    tiny_model().save(out / "pixels.keras")
    tiny_model(preprocessing=False).save(out / "normalized.keras")
    return out


def test_cli_bad_input(cli_error, tmp_path, saved_models, monkeypatch):
    pixels, normalized = str(saved_models / "pixels.keras"), str(saved_models / "normalized.keras")
    out = str(tmp_path / "m.tflite")
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "x.png").write_bytes(b"\x89PNG broken")
    (corrupt / "damaged.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (corrupt / "text.npy").write_text("1 2 3\n")
    (corrupt / "raises.py").write_text("raise RuntimeError('no GPU here')\n")
    (corrupt / "broken_syntax.py").write_text("def f(:\n")
    cases = [
        # Every input is read before converting: a bad --eval-images leaves no .tflite behind.
        (["--keras-model", pixels, "-o", out, "--eval-images", str(empty)], "--eval-images: no JPEG/PNG"),
        (["--keras-model", pixels, "-o", out, "--eval-images", str(corrupt / "text.npy")],
         "--eval-images: '" + str(corrupt / "text.npy") + "' is not a NumPy array file"),
        # An output that is an input or another output would lose data.
        (["--keras-model", pixels, "-o", out, "--report", out], f"--report {out!r} is the same file as --output"),
        (["--keras-model", pixels, "-o", pixels], f"--output {pixels!r} is the same file as --keras-model"),
        (["--keras-model", pixels, "-o", out, "--report", "/sys/r.json"], "--report: cannot write '/sys/r.json'"),
        (["--keras-model", str(corrupt / "damaged.keras"), "-o", out], "is not a Keras model file"),
        (["--keras-model", pixels, "-o", out, "--import-module", "raises"],
         "--import-module: importing 'raises' failed: RuntimeError: no GPU here"),
        (["--keras-model", pixels, "-o", out, "--import-module", "broken_syntax"],
         "--import-module: importing 'broken_syntax' failed: SyntaxError"),
        (["--keras-model", pixels, "-o", out, "--calibration", str(empty)], "--calibration: no JPEG/PNG"),
        (["--keras-model", pixels, "-o", out, "--calibration", str(corrupt)], "could be decoded"),
        (["--keras-model", normalized, "-o", out, "--io", "uint8"], "--io uint8"),
        (["--keras-model", pixels, "-o", str(tmp_path / "missing" / "m.tflite")], "--output"),
        (["--keras-model", pixels, "-o", str(tmp_path)], "is a directory"),
        (["--keras-model", pixels, "-o", out, "--report", str(tmp_path / "no" / "r.json")], "--report"),
        (["--keras-model", str(tmp_path / "nope.keras"), "-o", out], "--keras-model"),
        (["--keras-model", pixels, "--weights", "w.safetensors", "-o", out], "--weights"),
        (["--keras-model", pixels, "-o", out, "--quantize", "float16", "--io", "int8"], "--io int8"),
        (["--keras-model", pixels, "-o", out, "--input-size", "64"], "--input-size"),
        (["--keras-model", pixels, "-o", out, "--quantize", "float16", "--per-layer"], "--per-layer"),
        (["--keras-model", pixels, "-o", out, "--calibration", str(corrupt), "--eval-images", str(corrupt / "x.png")],
         "overlaps the --calibration images"),
        (["--keras-model", pixels, "-o", out, "--calibration", str(tmp_path / "nothing")], "no such file"),
    ]
    monkeypatch.chdir(corrupt)  # --import-module finds modules in the working folder
    for argv, message in cases:
        assert message in cli_error("convert", "--no-progress", *argv), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt", "empty"]  # nothing half-written
    assert sorted(p.name for p in corrupt.iterdir() if p.suffix != ".pyc" and p.name != "__pycache__") == [
        "broken_syntax.py", "damaged.keras", "raises.py", "text.npy", "x.png"]
    assert os.path.getsize(pixels) > 10_000  # the model given as -o is untouched


def test_cli_keras_model_with_npy_calibration(cli, tmp_path, saved_models):
    # Dim images (50..177): the input range is pinned to [0, 255] anyway, so uint8 input stays scale 1.
    np.save(tmp_path / "cal.npy", (50 + synthetic_images(6, SIZE, seed=3).images / 2).astype(np.uint8))
    code, out, err = cli("convert", "--keras-model", str(saved_models / "pixels.keras"),
                             "-o", str(tmp_path / "m.tflite"), "--io", "uint8", "--calibration",
                             str(tmp_path / "cal.npy"), "--eval-count", "4", "--report", str(tmp_path / "r.json"))
    assert code == 0, err
    assert "all ops int8" in out and "raw uint8 camera pixels" in out
    assert "calibrating" in err  # progress on stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["calibration"] == {"source": str(tmp_path / "cal.npy"), "count": 6, "skipped": 0,
                                     "range_anchored": True}
    assert report["audit"]["input"]["scale"] == 1.0 and report["audit"]["input"]["zero_point"] == 0
    assert sorted(os.listdir(tmp_path)) == ["cal.npy", "m.tflite", "r.json"]  # no temporary file left


def test_keras_model_with_custom_layer_module(cli, cli_error, tmp_path, monkeypatch, tiny_model):
    (tmp_path / "my_layers_for_test.py").write_text(
        "import keras\n\n\n@keras.saving.register_keras_serializable(package='my_layers')\n"
        "class Doubler(keras.layers.Layer):\n    def call(self, x):\n        return x * 2.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_layers_for_test

    tiny_model(extra_layer=my_layers_for_test.Doubler()).save(tmp_path / "custom.keras")
    # As in a fresh process: the layer is not registered until its module is imported.
    keras.saving.get_custom_objects().pop("my_layers>Doubler")
    monkeypatch.delitem(sys.modules, "my_layers_for_test")
    argv = ["convert", "--keras-model", str(tmp_path / "custom.keras"), "-o", str(tmp_path / "m.tflite"),
            "--quantize", "float32", "--eval-count", "4", "--json", "--no-progress"]
    assert "--keras-model: cannot load" in cli_error(*argv)
    code, out, err = cli(*argv, "--import-module", "my_layers_for_test")
    assert code == 0, err
    assert json.loads(out)["fidelity"]["max_abs_error"] < 1e-5


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    """The one full-size conversion: GhostNet-1.0x at 224, int8, via the CLI (`bench compare` covers the
    conversion in a process of its own)."""
    import contextlib
    import io

    from ghostnet_tf.cli import main

    out = tmp_path_factory.mktemp("full")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["convert", "--width", "1.0", "-o", str(out / "g.tflite"), "--calibration-steps", "8",
                     "--eval-count", "4", "--json", "--no-progress"])
    assert code == 0, stderr.getvalue()[-3000:]
    return out / "g.tflite", json.loads(stdout.getvalue()), stderr.getvalue()


@pytest.mark.slow
def test_full_size_ghostnet_int8(full_size):
    path, report, stderr = full_size
    assert "warning: no --calibration given" in stderr
    assert "warning: --width without --weights: random weights" in stderr  # said up front, before the work
    assert stderr.index("random weights") < stderr.index("warning: no --calibration")
    assert report["model"]["name"] == "ghostnet_100" and report["model"]["input_size"] == [224, 224]
    assert report["audit"]["int8"]["ok"] and report["audit"]["op_count"] > 150
    assert all(check["ok"] for check in report["audit"]["hygiene"].values()), report["audit"]["hygiene"]
    # Independent of the audit code: every tensor of the file is int8 or int32 but the uint8 input and output
    # (the default for a model taking pixels), and those are converted by one QUANTIZE each.
    interpreter = make_interpreter(model_path=path, use_xnnpack=False)
    edges = {d["index"] for d in interpreter.get_input_details() + interpreter.get_output_details()}
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()
            if t["index"] not in edges} <= {"int8", "int32"}
    assert interpreter.get_input_details()[0]["quantization"] == (1.0, 0)
    assert interpreter.get_input_details()[0]["dtype"] == interpreter.get_output_details()[0]["dtype"] == np.uint8
    assert report["audit"]["ops"]["QUANTIZE"] == 2 and "DEQUANTIZE" not in report["audit"]["ops"]
    # ~5.2 M parameters as int8 weights: between 4 and 8 MB.
    assert 4e6 < os.path.getsize(path) == report["output"]["size_bytes"] < 8e6
    assert report["fidelity"]["images"] == 4
    assert report["warnings"][0].startswith("calibrated on the built-in synthetic images")


def test_cli_error_in_subprocess_is_one_line(tmp_path):
    """TensorFlow is loaded (a GhostNet is built) and its C++ start-up lines are silenced all the same."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "convert", "convert", "--width", "0.5", "--input-size", "32",
                           "-o", str(tmp_path / "m.tflite"), "--calibration", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("warning:")]  # the random-weights notice
    assert lines == [f"python -m convert: error: --calibration: no JPEG/PNG images found in "
                                        f"{str(tmp_path)!r}"]
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["info", "--width", "inf"], ["info", "--width", "1e9"], ["info", "--width", "nan"],
                                  ["convert", "--width", "inf", "-o", "m.tflite"],
                                  ["port", "x.safetensors", "-o", "x.keras", "--width", "inf"]])
def test_absurd_widths_are_usage_errors(cli, argv):
    code, out, err = cli(*argv)
    assert code == 2 and "width must be a number > 0 and <= 4" in err and "Traceback" not in err


def test_resize_and_crop_matches_timms_eval_transform(photo):
    """timm's eval transform, computed here with PIL as torchvision does it: short side to
    floor(size / 0.875) with bicubic, then the centre crop (top = round((h - size) / 2))."""
    from PIL import Image

    size = 112
    image = Image.open(photo).convert("RGB")
    width, height = image.size
    short = math.floor(size / 0.875)  # 128
    new_w, new_h = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)
    resized = np.asarray(image.resize((new_w, new_h), Image.BICUBIC), np.float64)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    expected = resized[top:top + size, left:left + size]
    ours = load_image(str(photo), (size, size))  # decoded as PIL does (test below)
    assert ours.shape == expected.shape == (size, size, 3)
    difference = np.abs(ours - expected)
    # Two bicubic implementations (PIL, TensorFlow) differ by rounding only; a crop one pixel off would
    # differ by about 3 levels on average on this photo.
    assert difference.max() <= 1 and difference.mean() < 0.2
    assert np.abs(ours[:, 1:] - expected[:, :-1]).mean() > 2.5


def test_jpegs_decode_to_the_pixels_pil_gives(photo, tmp_path, write_image):
    """Evaluation, calibration and training decode a JPEG with libjpeg's accurate IDCT, as PIL (timm) does;
    TensorFlow's default fast IDCT is off by up to 4 levels."""
    import tensorflow as tf
    from PIL import Image

    from ghostnet_tf.preprocessing import decode_image
    from ghostnet_tf.training.data import _read_image

    thumbnail = tmp_path / "thumbnail.jpg"
    write_image(thumbnail, np.random.default_rng(0).integers(0, 256, (32, 32, 3)))
    for path in (photo, thumbnail):
        expected = np.asarray(Image.open(path).convert("RGB"))
        with open(path, "rb") as f:
            assert np.array_equal(decode_image(f.read()).numpy(), expected)
        streamed = next(iter(tf.data.Dataset.from_tensors(str(path)).map(_read_image)))
        assert np.array_equal(streamed.numpy(), expected)
    assert np.array_equal(load_image(str(thumbnail), (32, 32), Transform((32, 32), crop_pct=1.0)),
                          np.asarray(Image.open(thumbnail).convert("RGB")))


def test_absurd_aspect_ratio_is_refused_without_a_huge_intermediate(tmp_path, write_image):
    with pytest.raises(ValueError, match="aspect ratio beyond 10:1"):
        resize_and_crop(np.zeros((1, 20000, 3), np.uint8), (128, 128))
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a_strip.png", np.zeros((1, 20000, 3)))
    write_image(folder / "b_photo.png", np.full((40, 48, 3), 128))
    images = image_source(str(folder), SIZE, 10, "--calibration", seed=0)
    assert images.images.shape == (1, *SIZE, 3) and images.skipped == 1


def test_atomic_write_errors_name_the_users_path(tmp_path):
    from ghostnet_tf.files import atomic_path

    target = tmp_path / "model.keras"
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            raise OSError(f"cannot save {tmp}: disk full")
    assert str(info.value) == f"cannot save {target}: disk full"
    assert list(tmp_path.iterdir()) == []


def test_int16x8_mode_keeps_int16_activations(trained_tiny, tmp_path):
    """--quantize int16x8: int8 weights, int16 activations (TFLite's 16x8 kernels), float input and output; on
    trained weights (the tiny CIFAR-10 classifier), since its fidelity is the claim."""
    path = tmp_path / "m16.tflite"
    report = convert_and_verify(trained_tiny, path, quantize="int16x8", calibration=str(CIFAR_CALIBRATION),
                                calibration_steps=200, eval_images=str(CIFAR_TEST), eval_count=1000,
                                show_progress=False)
    assert report["quantize"] == "int16x8" and report["calibration"]["count"] == 200
    details = make_interpreter(model_path=str(path)).get_tensor_details()
    dtypes = {str(np.dtype(d["dtype"])) for d in details}
    assert "int16" in dtypes and "int8" in dtypes  # activations and weights
    # Measured on the 1,000 CIFAR test images (TF 2.21): int16x8 33.1 dB and 98.1 % top-1 agreement, full int8
    # 29.5 dB and 96.9 %. The bounds keep about 1 dB and 6 images of room for other versions.
    assert report["fidelity"]["sqnr_db"] >= 32.0 and report["fidelity"]["top1_agreement_pct"] >= 97.5
