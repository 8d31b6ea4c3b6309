"""``ghostnet predict``: class names and scores for photos, through a model file's own transform and labels,
the first thing a person does with an app-ready model."""
import os

import numpy as np

from convert.calibration import takes_pixels
from convert.inference import predict
from convert.metadata import default_labels, tflite_feed
from convert.source import as_source
from ghostnet_tf.cliutil import check_input_file
from ghostnet_tf.preprocessing import load_image, model_inputs
from ghostnet_tf.runtime import make_interpreter


def predict_images(images, tflite=None, model=None, labels=None, top=5):
    """[{"image", "top": [{"index", "label", "score"}]}] for image files, by a .tflite file (its metadata says
    how to prepare images and names the classes) or a Keras model or ``ModelSource`` (its transform and class
    names; ``labels`` overrides them)."""
    if (tflite is None) == (model is None):
        raise ValueError("predict: give exactly one of a .tflite file or a Keras model")
    images = [check_input_file(path, "IMAGE") for path in images]
    if model is not None:
        from convert.converter import input_size_of

        source = as_source(model)
        model = source.model
        size = input_size_of(model)
        transform, pixels = source.transform_for(size), takes_pixels(model)
        labels = default_labels(model.outputs[0].shape[-1], labels or source.labels)
        run = lambda x: np.asarray(model.predict(x, verbose=0))  # noqa: E731
    else:
        interpreter = make_interpreter(model_path=check_input_file(tflite, "--tflite"), num_threads=2)
        size, transform, pixels, labels = tflite_feed(tflite, interpreter)
        run = lambda x: predict(interpreter, x)  # noqa: E731
    results = []
    for path in images:
        scores = run(model_inputs(load_image(path, size, transform)[None], pixels)).reshape(-1)
        if labels is not None and len(labels) != len(scores):
            labels = None  # names that do not fit the output are no names
        best = np.argsort(-scores, kind="stable")[:top]
        results.append({"image": os.fspath(path), "top": [
            {"index": int(i), "label": labels[i] if labels else None, "score": float(scores[i])} for i in best]})
    return {"model": os.fspath(tflite) if tflite else model.name, "transform": transform.to_json(),
            "labels": labels is not None, "predictions": results}


def format_predictions(report):
    lines = []
    for entry in report["predictions"]:
        lines.append(entry["image"])
        lines += [f"  {p['score']:8.4f}  {p['label'] if p['label'] is not None else 'class'} ({p['index']})"
                  for p in entry["top"]]
    if not report["labels"]:
        lines.append("(the model carries no class names: convert with --labels FILE)")
    return "\n".join(lines)
