"""ImageNet input normalization and evaluation image loading: the one definition used inside the model,
outside it, by the converter's calibration and by ``ghostnet eval``."""
import math
import os

import numpy as np

from ghostnet_tf.cliutil import first_line

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


def model_inputs(images, pixels):
    """Images in [0, 255] -> model input: unchanged for pixel models, ImageNet-normalized otherwise."""
    return np.asarray(images, np.float32) if pixels else preprocess_input(images)


def normalization_layer(name="preprocessing"):
    """A Keras layer computing ``preprocess_input`` on [0, 255] RGB inside the model."""
    from keras import layers

    mean = [255.0 * m for m in IMAGENET_MEAN]
    variance = [(255.0 * s) ** 2 for s in IMAGENET_STD]
    return layers.Normalization(mean=mean, variance=variance, name=name)


# Evaluation preprocessing of timm's ghostnet_100: resize so the crop is 87.5 % of the short side
# (224 -> 256), bicubic, then center-crop. Calibration, fidelity checks and `ghostnet eval` all use it,
# so int8 ranges are measured on exactly the pixels the model is evaluated on.
CROP_PCT = 0.875
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Longest side / shortest side accepted: the short side is scaled to the crop size, so a 1x20000 strip
# would become a 146x2.9M intermediate (5 GB) for a 128 crop. Photos stay far below 10:1.
MAX_ASPECT_RATIO = 10


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
    if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"resize_and_crop: expected an RGB image (H, W, 3), got shape {image.shape}")
    if max(image.shape[:2]) > MAX_ASPECT_RATIO * min(image.shape[:2]):
        raise ValueError(f"resize_and_crop: a {image.shape[0]}x{image.shape[1]} image is not a photo (aspect ratio "
                         f"beyond {MAX_ASPECT_RATIO}:1); its centre crop would need a huge intermediate")
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
        return resize_and_crop(image.numpy(), size)
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise ValueError(f"cannot read image {path}: {first_line(exc)}") from None


def synthetic_photo(rng, height, width):
    """A natural-looking RGB image in [0, 255] (float, not rounded), from numpy alone: 1/f colour noise
    (the spectrum of photographs) with a few hard-edged shapes, stretched to the full range."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx ** 2 + fy ** 2)
    radius[0, 0] = 1.0
    yy, xx = np.mgrid[0:height, 0:width]
    alpha = rng.uniform(1.0, 1.6)
    spectrum = rng.normal(size=(3, height, width // 2 + 1)) + 1j * rng.normal(size=(3, height, width // 2 + 1))
    fields = np.fft.irfft2(spectrum / radius ** alpha, s=(height, width))
    mix = rng.normal(0.6, 0.3, size=(3, 3)) + np.eye(3)  # correlated colour channels
    image = np.einsum("ij,jhw->hwi", mix, fields)
    for _ in range(rng.integers(2, 6)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.05, 0.3) * height, rng.uniform(0.05, 0.3) * width
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        image[inside] = rng.normal(0, image.std(), size=3) + image.mean()
    low, high = np.percentile(image, [1, 99])
    return np.clip((image - low) / (high - low) * 255.0, 0, 255)
