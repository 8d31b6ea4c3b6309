"""Classify images with MediaPipe Tasks' ImageClassifier, as an Android app does (the same C++ code), in a
process of its own: ``python mediapipe_classify.py MODEL.tflite IMAGES.npy OUT.json``.

IMAGES.npy: uint8 RGB images (N, H, W, 3). OUT.json: per image the top category's index, name and score,
or {"error": message} when MediaPipe refuses the file."""
import json
import sys

import mediapipe as mp
import numpy as np
from mediapipe.tasks import python as mp_tasks
from mediapipe.tasks.python import vision


def main(model, images, out):
    options = vision.ImageClassifierOptions(base_options=mp_tasks.BaseOptions(model_asset_path=model),
                                            running_mode=vision.RunningMode.IMAGE, max_results=1)
    try:
        classifier = vision.ImageClassifier.create_from_options(options)
    except (ValueError, RuntimeError) as exc:
        result = {"error": str(exc).splitlines()[0]}
    else:
        with classifier:
            top = []
            for image in np.load(images):
                category = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                        data=np.ascontiguousarray(image))).classifications[0].categories[0]
                top.append({"index": category.index, "name": category.category_name, "score": category.score})
        result = {"top": top, "version": mp.__version__}
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
