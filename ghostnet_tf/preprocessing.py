"""ImageNet input normalization and evaluation image loading: the one definition used inside the model,
outside it, by the converter's calibration and by ``ghostnet eval``."""
import math
import os

import numpy as np
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_input(x):
    """RGB in [0, 255] (channels last) -> ImageNet-normalized float32, as the reference was trained.

    Use it with ``GhostNet(include_preprocessing=False)``; the default model does the same inside.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1:] != (3,):
        raise ValueError(f"preprocess_input: expected RGB images with 3 channels last, got shape {x.shape}")
    return (x / 255.0 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


def normalization_layer(name="preprocessing"):
    """A Keras layer computing ``preprocess_input`` on [0, 255] RGB inside the model."""
    mean = [255.0 * m for m in IMAGENET_MEAN]
    variance = [(255.0 * s) ** 2 for s in IMAGENET_STD]
    return layers.Normalization(mean=mean, variance=variance, name=name)


# Evaluation preprocessing of timm's ghostnet_100: resize so the crop is 87.5 % of the short side
# (224 -> 256), bicubic, then center-crop. Calibration, fidelity checks and `ghostnet eval` all use it,
# so int8 ranges are measured on exactly the pixels the model is evaluated on.
CROP_PCT = 0.875
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def find_images(directory):
    """JPEG/PNG files under ``directory`` (recursive), sorted so every run sees the same order."""
    paths = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names
             if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(paths)


def resize_and_crop(image, size):
    """RGB image (H, W, 3) in [0, 255] -> float32 (height, width, 3) of whole numbers in [0, 255].

    Keeps the aspect ratio, scales so the image covers ``size / CROP_PCT`` (the short side goes to
    256 for 224), bicubic with antialiasing like PIL, then takes the center crop of ``size``.
    Rounded and clipped like an 8-bit camera frame, so it is also what a phone app would feed.
    """
    import tensorflow as tf

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"resize_and_crop: expected an RGB image (H, W, 3), got shape {image.shape}")
    height, width = size
    scale_h, scale_w = math.floor(height / CROP_PCT), math.floor(width / CROP_PCT)
    ratio = max(scale_h / image.shape[0], scale_w / image.shape[1])
    new_h = max(scale_h, int(image.shape[0] * ratio))
    new_w = max(scale_w, int(image.shape[1] * ratio))
    resized = tf.image.resize(tf.cast(image, tf.float32), (new_h, new_w), method="bicubic", antialias=True)
    top, left = int(round((new_h - height) / 2.0)), int(round((new_w - width) / 2.0))
    crop = resized[top:top + height, left:left + width].numpy()
    return np.clip(np.round(crop), 0.0, 255.0).astype(np.float32)


def load_image(path, size):
    """Decode a JPEG/PNG file to RGB and apply ``resize_and_crop``; ValueError naming the file if unreadable."""
    import tensorflow as tf

    try:
        with open(path, "rb") as f:
            data = f.read()
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    except (OSError, tf.errors.OpError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise ValueError(f"cannot read image {path}: {message.strip().splitlines()[0]}") from None
    return resize_and_crop(image.numpy(), size)
