"""``bench local`` on real converted models with the real LiteRT runtime."""
import os

import numpy as np
import pytest

from android_bench import results
from android_bench.inputs import InputContract, input_contracts
from android_bench.local_runner import LocalRunner
from android_bench.runner import RunConfig
from ghostnet_tf.cli import main


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_run_local_measures_a_real_model(models, kind):
    rec = LocalRunner().measure(models[kind], RunConfig(threads=2, runs=8, warmup=3))
    results.validate_record(rec)
    assert rec["mode"] == "local" and rec["delegate"] == "xnnpack" and rec["threads"] == 2
    assert rec["runtime"]["name"] == "ai-edge-litert"
    assert rec["model"]["input_shape"] == [1, 32, 32, 3]
    assert rec["model"]["input_dtype"] == ("float32" if kind == "float" else "int8")
    assert (rec["model"]["input_quantization"] is None) == (kind == "float")
    assert rec["model"]["size_bytes"] == os.path.getsize(models[kind])
    stats = rec["stats"]
    assert stats["count"] == 8 and rec["warmup"]["count"] == 3
    assert 0 < stats["min_us"] <= stats["p5_us"] <= stats["median_us"] <= stats["p95_us"] <= stats["max_us"]
    assert stats["init_us"] > 0 and stats["first_inference_us"] == rec["warmup"]["first_us"]
    assert rec["memory"]["peak_mb"] > 10  # a Python process with numpy and LiteRT loaded
    assert rec["device"]["cpu_count"] == os.cpu_count()


def test_pixel_input_gets_a_photo_like_frame():
    """An int8 input with scale 1 takes [0, 255] pixels (pixel - 128): it must not get a nearly black frame."""
    detail = {"index": 0, "shape": np.array([1, 64, 48, 3]), "dtype": np.int8, "quantization": (1.0, -128)}
    values = InputContract.of(detail).sample(np.random.default_rng(1))
    assert values.dtype == np.int8 and values.shape == (1, 64, 48, 3)
    pixels = values.astype(np.float64) + 128
    assert 60 < pixels.mean() < 195 and pixels.std() > 40  # spread over the range, like a photo
    assert pixels.min() == 0 and pixels.max() == 255  # stretched to the full range
    # Neighbouring pixels are alike (a photo, not white noise).
    assert np.corrcoef(pixels[0, :, :-1].ravel(), pixels[0, :, 1:].ravel())[0, 1] > 0.5


def test_normalized_input_gets_an_imagenet_normalized_frame():
    """An int8 input with another scale takes ImageNet-normalized images: (pixel / 255 - mean) / std."""
    detail = {"index": 0, "shape": np.array([1, 64, 48, 3]), "dtype": np.int8,
              "quantization": (0.02, -14)}  # covers [-2.3, 2.8]
    real = (InputContract.of(detail).sample(np.random.default_rng(1)).astype(np.float64) + 14) * 0.02
    low = (0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    high = (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.all(real.min(axis=(0, 1, 2)) >= low - 0.02) and np.all(real.max(axis=(0, 1, 2)) <= high + 0.02)
    assert real.std() > 0.5
    floats = InputContract.of({**detail, "dtype": np.float32, "quantization": (0.0, 0)},
                              declared_pixels=False).sample(np.random.default_rng(1))
    np.testing.assert_allclose(floats, real, atol=0.011)  # the same frame, quantized or not


def test_a_float_input_takes_what_the_metadata_declares(models, tmp_path):
    """The input contract is read from the file: a float input whose metadata declares ImageNet's
    normalization gets normalized frames; the same file without metadata (or declaring mean 0, std 1, a
    model normalizing inside) gets pixels, and an integer input's scale decides for it."""
    from convert.metadata import attach, model_info
    from ghostnet_tf.preprocessing import Transform
    from ghostnet_tf.runtime import make_interpreter

    def contract(path):
        return input_contracts(path, make_interpreter(model_path=path))[0]

    for pixels in (False, True):
        path = tmp_path / f"pixels_{pixels}.tflite"
        info = model_info("tiny", "float32", "float32", pixels, (32, 32), Transform((32, 32)), None)
        path.write_bytes(attach(models["float"].read_bytes(), info))
        assert contract(path).pixels is pixels
    assert contract(models["float"]).pixels is True  # no metadata
    assert contract(models["int8"]).pixels is False  # int8 with a scale other than 1: normalized


def test_run_config_and_local_runner_refuse_what_they_cannot_do(models):
    with pytest.raises(ValueError, match=r"need threads >= 1, runs >= 1 and warmup >= 0 \(got 0, 50, 5\)"):
        RunConfig(threads=0)
    with pytest.raises(ValueError, match="accelerator 'tpu'"):
        RunConfig(accelerator="tpu")
    assert [RunConfig(use_xnnpack=x, accelerator=a).delegate for x, a in ((True, None), (False, None), (True, "gpu"))] \
        == ["xnnpack", "cpu", "gpu"]
    with pytest.raises(ValueError, match="bench local runs on the CPU: it has no nnapi delegate"):
        LocalRunner().measure(models["float"], RunConfig(accelerator="nnapi"))


def test_cli_writes_one_record_per_thread_count(models, tmp_path, capsys):
    path = tmp_path / "local.jsonl"
    code = main(["bench", "local", "--model", str(models["int8"]), "--threads", "1,2", "--runs", "5",
                 "--warmup", "1", "--no-xnnpack", "--json-lines", str(path)])
    assert code == 0
    records = results.read_records(path)
    assert [(r["threads"], r["delegate"]) for r in records] == [(1, "cpu"), (2, "cpu")]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("median=" in line and "p95=" in line for line in lines)


@pytest.mark.parametrize("make, message", [
    (lambda d, m: d / "absent.tflite", "does not exist"),
    (lambda d, m: (d / "text.tflite").write_text("hello, not a model") and d / "text.tflite", "not a TFLite file"),
    (lambda d, m: (d / "cut.tflite").write_bytes(m.read_bytes()[:200]) and d / "cut.tflite",
     "cut.tflite is not a TFLite model the runtime can load"),
])
def test_bad_model_is_one_clear_line_and_writes_nothing(models, tmp_path, capsys, make, message):
    model = make(tmp_path, models["float"])
    path = tmp_path / "out.jsonl"
    assert main(["bench", "local", "--model", str(model), "--json-lines", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not path.exists()
