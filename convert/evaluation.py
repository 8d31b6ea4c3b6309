"""``ghostnet eval``: ImageNet-style top-1/top-5 of a Keras model and a .tflite model, side by side,
on exactly the preprocessing used for calibration."""
import os

import numpy as np

from convert.calibration import takes_pixels
from convert.inference import predict
from convert.progress import progress
from convert.metadata import MAX_IMAGE_LIST_BYTES, read_text_file, tflite_feed
from convert.source import as_source
from ghostnet_tf.preprocessing import Transform, class_folders, load_image, model_inputs, resize_and_crop
from ghostnet_tf.cliutil import check_input_file
from ghostnet_tf.runtime import make_interpreter
from ghostnet_tf.spec import check_input_size

BATCH = 32


def class_folder_samples(data):
    """(path, label) for DATA/<class>/**/image, label = index of the class in sorted order."""
    classes = class_folders(data)
    samples = [(path, label) for label, (_, paths) in enumerate(classes) for path in paths]
    return samples, len(classes)


def labels_file_samples(data, labels):
    """(path, label) from lines 'relative/path label_index' (blank lines and # comments ignored)."""
    samples = []
    for number, line in enumerate(read_text_file(labels, "--labels", MAX_IMAGE_LIST_BYTES).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"--labels: line {number} of {labels!r} is not 'relative/path label_index': {line!r}")
        samples.append((os.path.join(data, parts[0]), int(parts[1])))
    return samples, len({label for _, label in samples})


def npz_samples(data):
    """(image array, label) from a .npz with ``images`` (N, H, W, 3) in [0, 255] and ``labels`` (N,)."""
    check_input_file(data, "DATA")
    try:
        with np.load(data) as arrays:
            images, labels = arrays["images"], arrays["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"DATA: {data!r} is not a .npz with 'images' and 'labels': {exc}") from None
    if images.ndim != 4 or images.shape[-1] != 3 or len(labels) != len(images):
        raise ValueError(f"DATA: {data!r}: expected images (N, H, W, 3) and N labels, got {images.shape} and "
                         f"{labels.shape}")
    return list(zip(images, (int(label) for label in labels))), len(set(labels.tolist()))


def spread(samples, limit):
    """``limit`` samples evenly spaced over the sorted list, so a quick run still sees every class."""
    if not limit or limit >= len(samples):
        return samples
    return [samples[i] for i in np.linspace(0, len(samples) - 1, limit).round().astype(int)]


def _topk(scores, labels, k):
    """Images whose label is surely among the top ``k``: fewer than ``k`` other outputs score at least as
    high. A tie at the boundary is a miss (argmax would pick the lowest index and flatter class 0)."""
    label_scores = scores[np.arange(len(scores)), labels][:, None]
    rivals = np.sum(scores >= label_scores, axis=1) - 1
    return int(np.sum(rivals < k))


def _top_ties(scores):
    """Images whose top score is shared by several outputs (int8 outputs tie often)."""
    return int(np.sum(np.sum(scores == scores.max(axis=1, keepdims=True), axis=1) > 1))


def _check_labels(samples, where, model, tflite, interpreter):
    """Before any work: every label an output of each model (``where``: the labels file or DATA)."""
    outputs = {}
    if model is not None:
        outputs[model.name] = int(model.outputs[0].shape[-1])
    if interpreter is not None:
        outputs[os.fspath(tflite)] = int(np.prod(interpreter.get_output_details()[0]["shape"][1:]))
    top = max(label for _, label in samples)
    for name, count in outputs.items():
        if top >= count:
            raise ValueError(f"{where}: label {top} is out of range for {name} with {count} outputs; "
                             "labels are class indices from 0")


def _hxw(size):
    return f"{size[0]}x{size[1]}"


def evaluate(data, model=None, tflite=None, labels=None, limit=None, input_size=None, show_progress=True,
             crop_pct=None):
    """Top-1/top-5 (%) of ``model`` (Keras, or a ``ModelSource``) and/or ``tflite`` (path) on DATA (a class-folder tree or a .npz of
    images and labels); a Keras model decides how images are prepared, else the .tflite file's own metadata
    (its transform and normalization), else ImageNet's transform on raw pixels.
    A tie for the top score is a miss; ``top1_ties`` counts the images whose top score tied."""
    if model is None and tflite is None:
        raise ValueError("evaluate: give a Keras model and/or a .tflite file")
    arrays = os.fspath(data).lower().endswith(".npz")
    if not (os.path.lexists(data) if arrays else os.path.isdir(data)):
        raise ValueError(f"DATA: no such {'file' if arrays else 'folder'}: {data!r}")
    if tflite is not None and not os.path.lexists(tflite):
        raise ValueError(f"--tflite: no such file: {tflite!r}")
    if input_size is not None:
        input_size = check_input_size(input_size, "--input-size")
    interpreter = make_interpreter(model_path=check_input_file(tflite, "--tflite"), num_threads=2) if tflite \
        else None
    feed = tflite_feed(tflite, interpreter) if tflite else None  # refuses files that are not image classifiers
    if model is not None:
        from convert.converter import input_size_of

        source = as_source(model)
        model = source.model
        size = input_size_of(model, input_size)
        pixels = takes_pixels(model)
        transform = source.transform_for(size)
    else:
        size, transform, pixels, _ = feed
        if input_size not in (None, size):
            raise ValueError(f"--input-size {_hxw(input_size)}: {tflite} takes {_hxw(size)} images; leave "
                             "--input-size out")
    if feed is not None and feed[0] != size:
        raise ValueError(f"--tflite: {tflite} takes {_hxw(feed[0])} images, the Keras model {model.name!r} "
                         f"{_hxw(size)}; compare with a .tflite converted from this model at its size")
    if arrays:
        samples, classes = npz_samples(data)
    else:
        samples, classes = labels_file_samples(data, labels) if labels else class_folder_samples(data)
    if not samples:
        raise ValueError(f"--labels: {labels!r} lists no images" if labels
                         else f"DATA: no JPEG/PNG images found in class folders of {data!r}")
    samples = spread(samples, limit)
    _check_labels(samples, f"--labels: {labels!r}" if labels else f"DATA: {os.fspath(data)!r}", model, tflite,
                  interpreter)
    if crop_pct is not None:
        transform = Transform(size, crop_pct, transform.interpolation)
    outputs = {"keras": [], "tflite": []}
    kept, skipped, first_failure = [], 0, None
    batch, batch_labels = [], []

    def flush():
        inputs = model_inputs(np.stack(batch), pixels)
        if model is not None:
            outputs["keras"].append(np.asarray(model.predict(inputs, verbose=0)).reshape(len(batch), -1))
        if interpreter is not None:
            outputs["tflite"].append(predict(interpreter, inputs).reshape(len(batch), -1))
        kept.extend(batch_labels)
        batch.clear()
        batch_labels.clear()

    for source, label in progress(samples, len(samples), "evaluating", enabled=show_progress):
        try:
            batch.append(resize_and_crop(source, size, transform) if arrays else load_image(source, size, transform))
        except ValueError as exc:
            skipped += 1
            first_failure = first_failure or str(exc)
            continue
        batch_labels.append(label)
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    if not kept:
        raise ValueError(f"DATA: none of the {skipped} images in {data!r} could be decoded (the first: "
                         f"{first_failure})")

    report = {"data": os.fspath(data), "images": len(kept), "skipped": skipped, "classes": classes,
              "input_size": list(size), "transform": transform.to_json(), "models": []}
    for kind, name in (("keras", model.name if model is not None else None), ("tflite", tflite)):
        if not outputs[kind]:
            continue
        scores = np.concatenate(outputs[kind])
        report["models"].append({"kind": kind, "name": os.fspath(name),
                                 "top1_pct": 100.0 * _topk(scores, kept, 1) / len(kept),
                                 "top5_pct": 100.0 * _topk(scores, kept, 5) / len(kept),
                                 "top1_ties": _top_ties(scores)})
    if len(report["models"]) == 2:
        keras_result, tflite_result = report["models"]
        report["drop"] = {k: tflite_result[k] - keras_result[k] for k in ("top1_pct", "top5_pct")}
    return report
