"""``ghostnet eval`` on a tiny generated ImageNet-style folder: Keras and .tflite side by side."""
import json

import numpy as np
import pytest

from convert import convert_model, evaluate
from convert.evaluation import spread
from ghostnet_tf.cli import main
from ghostnet_tf.preprocessing import find_images, load_image

SIZE = (32, 32)  # the tiny model's input

CLASSES = ("cat", "dog", "zebra")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, write_image):
    """3 class folders x 3 images (JPEG and PNG, one nested), plus one corrupt file."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name / "sub").mkdir(parents=True)
        for i in range(3):
            folder = root / name / ("sub" if i == 2 else "")
            write_image(folder / f"{i}.{'png' if i else 'jpg'}", rng.integers(0, 256, (40, 50, 3)))
    (root / "dog" / "corrupt.jpg").write_bytes(b"garbage")
    return root


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_model):
    model = tiny_model()
    path = tmp_path_factory.mktemp("eval_model") / "tiny.tflite"
    convert_model(model, path, quantize="int8", calibration_steps=8, show_progress=False)
    return model, path


def expected_top(model, dataset, k):
    """Top-k accuracy of the Keras model computed here directly from the folder layout."""
    hits = total = 0
    for label, name in enumerate(CLASSES):
        for path in find_images(dataset / name):
            if path.endswith("corrupt.jpg"):
                continue
            scores = model.predict(load_image(path, SIZE)[None], verbose=0)[0]
            hits += label in np.argsort(-scores)[:k]
            total += 1
    return 100.0 * hits / total


def test_eval_side_by_side(dataset, converted):
    model, path = converted
    report = evaluate(str(dataset), model=model, tflite=str(path), show_progress=False)
    assert report["images"] == 9 and report["skipped"] == 1 and report["classes"] == 3
    keras_result, tflite_result = report["models"]
    assert keras_result["kind"] == "keras" and tflite_result["kind"] == "tflite"
    assert keras_result["top1_pct"] == pytest.approx(expected_top(model, dataset, 1))
    assert keras_result["top5_pct"] == pytest.approx(expected_top(model, dataset, 5))
    assert report["drop"]["top1_pct"] == pytest.approx(tflite_result["top1_pct"] - keras_result["top1_pct"])
    assert keras_result["top1_ties"] == 0  # float softmax outputs do not tie


def test_eval_labels_file_and_limit(dataset, converted, tmp_path):
    _, path = converted
    labels = tmp_path / "labels.txt"
    labels.write_text("# path label\ncat/0.jpg 0\ndog/1.png 1\nzebra/sub/2.png 2\n\n")
    report = evaluate(str(dataset), tflite=str(path), labels=str(labels), show_progress=False)
    assert report["images"] == 3 and [m["kind"] for m in report["models"]] == ["tflite"]
    limited = evaluate(str(dataset), tflite=str(path), limit=4, show_progress=False)
    assert limited["images"] + limited["skipped"] == 4


def test_limit_spreads_over_the_classes():
    samples = [(f"{name}/{i}.jpg", label) for label, name in enumerate(CLASSES) for i in range(5)]
    assert [label for _, label in spread(samples, 3)] == [0, 1, 2]
    # Positions 0, 3.5, 7, 10.5, 14 of the 15, rounded half to even: every class is seen.
    assert spread(samples, 5) == [samples[0], samples[4], samples[7], samples[10], samples[14]]


def test_a_tie_for_the_top_score_is_a_miss(tmp_path, write_image):
    """A model whose outputs are all equal: argmax would pick class 0 and score 100 % on a class-0 folder."""
    import keras

    inputs = keras.Input((*SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, kernel_initializer="zeros", activation="softmax")(x))
    for i in range(3):
        (tmp_path / "only_class").mkdir(exist_ok=True)
        write_image(tmp_path / "only_class" / f"{i}.png", np.full((40, 40, 3), 60 * i))
    report = evaluate(str(tmp_path), model=model, show_progress=False)
    [result] = report["models"]
    assert (result["top1_pct"], result["top5_pct"], result["top1_ties"]) == (0.0, 0.0, 3)


def test_eval_cli(capsys, dataset, converted, tmp_path):
    model, path = converted
    keras_file = tmp_path / "tiny.keras"
    model.save(keras_file)
    code = main(["eval", str(dataset), "--tflite", str(path), "--keras-model", str(keras_file),
                 "--report", str(tmp_path / "eval.json")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "drop (tflite - keras)" in captured.out and "evaluating" in captured.err
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["images"] == 9 and len(report["models"]) == 2


@pytest.mark.parametrize("argv,message", [
    (["--tflite", "missing.tflite"], "--tflite: no such file"),
    (["--tflite", "{data}/cat/0.jpg"], "cat/0.jpg is not a TFLite model the runtime can load"),
    (["--tflite", "{vector_model}"], "takes input of shape [1, 8], not RGB images"),
    (["--tflite", "{tflite}", "--report", "{tflite}"], "--report '{tflite}' is the same file as --tflite"),
    (["--tflite", "{tflite}", "--labels", "{empty_labels}"], "--labels: '{empty_labels}' lists no images"),
    ([], "give --tflite"),
    (["--weights", "w.pth", "--tflite", "x"], "--weights goes with --width"),
])
def test_eval_bad_input(cli_error, dataset, converted, vector_model, tmp_path, argv, message):
    (tmp_path / "empty.txt").write_text("# no images\n")
    fill = {"data": dataset, "tflite": converted[1], "vector_model": vector_model, "empty_labels": tmp_path / "empty.txt"}
    assert message.format(**fill) in cli_error("eval", str(dataset), *(a.format(**fill) for a in argv))


@pytest.fixture(scope="module")
def vector_model(tmp_path_factory):
    """A real .tflite model that takes a vector, not images."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    path = tmp_path_factory.mktemp("vector") / "vector.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_eval_bad_folders(capsys, tmp_path, converted):
    _, path = converted
    assert main(["eval", str(tmp_path / "nope"), "--tflite", str(path)]) == 2
    assert "DATA: no such folder" in capsys.readouterr().err
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert main(["eval", str(tmp_path / "empty"), "--tflite", str(path)]) == 2
    assert "no JPEG/PNG images" in capsys.readouterr().err
    bad = tmp_path / "bad"
    (bad / "a").mkdir(parents=True)
    (bad / "a" / "x.png").write_bytes(b"nope")
    assert main(["eval", str(bad), "--tflite", str(path)]) == 2
    assert "could be decoded" in capsys.readouterr().err
    labels = tmp_path / "labels.txt"
    labels.write_text("a/x.png cat\n")
    assert main(["eval", str(bad), "--tflite", str(path), "--labels", str(labels)]) == 2
    assert "--labels: line 1" in capsys.readouterr().err
