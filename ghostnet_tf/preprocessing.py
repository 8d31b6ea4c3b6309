"""ImageNet input normalization and evaluation image loading: the one definition used inside the model,
outside it, by the converter's calibration and by ``ghostnet eval``."""
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from ghostnet_tf.cliutil import first_line
from ghostnet_tf.spec import check_crop_pct, check_input_size

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


def imagenet_classes():
    """The 1,000 ImageNet class names in the order of the classifier's outputs (WordNet id order)."""
    from importlib.resources import files

    return tuple(files("ghostnet_tf").joinpath("imagenet_classes.txt").read_text(encoding="utf-8").splitlines())


def decode_predictions(scores, top=5, labels=None):
    """(N, classes) scores -> per image the ``top`` [(index, class name, score)], best first; ``labels``:
    the class names (default ImageNet's)."""
    scores = np.asarray(scores)
    labels = imagenet_classes() if labels is None else labels
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"decode_predictions: expected scores of shape (N, {len(labels)}), got {scores.shape}")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return [[(int(i), labels[i], float(row[i])) for i in best] for row, best in zip(scores, order)]


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
    """JPEG/PNG files under ``directory`` (recursive), sorted so every run sees the same order. Regular files
    only: reading a FIFO named like an image would hang, a link to /dev/zero never end."""
    paths = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names
             if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(path for path in paths if os.path.isfile(path))


def class_folders(directory, where="DATA"):
    """[(class name, image paths)] of an image-folder dataset DIR/<class>/**/image, in sorted class order
    (so the label of a class is its index): the one layout `train`, `eval` and the tools read. A class folder
    that repeats other images (a link to DIR or a parent of it, to another class folder or into one) is refused
    in one line naming ``where`` and the folder."""
    classes = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    _check_distinct_classes(directory, classes, where)
    return [(name, find_images(os.path.join(directory, name))) for name in classes]


def _check_distinct_classes(directory, classes, where):
    """Each class folder a folder of its own: not DIR itself or above it, not the same as or inside another."""
    def real(path):
        return os.path.join(os.path.realpath(path), "")  # a trailing separator: "a/" is not a prefix of "ab/"

    root = real(directory)
    resolved = sorted((real(os.path.join(directory, name)), os.path.join(directory, name)) for name in classes)
    for target, path in resolved:
        if root.startswith(target):
            raise ValueError(f"{where}: class folder {path!r} is {target.rstrip(os.sep)!r}, the data folder or one "
                             f"holding it (a link?): its images would count twice; remove it")
    # Sorted, a folder is followed by the folders inside it: comparing neighbours finds every overlap.
    for (first, first_path), (second, second_path) in zip(resolved, resolved[1:]):
        if second.startswith(first):
            raise ValueError(f"{where}: class folders {first_path!r} and {second_path!r} are the same folder or one "
                             f"holds the other (a link?): their images would count under two classes; remove one")


INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "area")
# Where a model's evaluation transform and class names are stored: members of the .keras zip archive (Keras
# ignores them).
TRANSFORM_MEMBER = "ghostnet_transform.json"
LABELS_MEMBER = "ghostnet_labels.txt"


@dataclass(frozen=True)
class Transform:
    """How a model's evaluation images are prepared: scale so that the crop is ``crop_pct`` of the short side,
    resize with ``interpolation``, centre-crop ``size`` (height, width). ImageNet GhostNet: 224, 0.875, bicubic;
    a model trained on 32x32 CIFAR images at 32x32: crop_pct 1.0 (the image as it is)."""
    size: tuple
    crop_pct: float = CROP_PCT
    interpolation: str = "bicubic"

    def __post_init__(self):
        object.__setattr__(self, "size", check_input_size(tuple(int(s) for s in self.size), "Transform: size"))
        check_crop_pct(self.crop_pct, "Transform")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"Transform: interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                             f"got {self.interpolation!r}")

    def to_json(self):
        return {"size": list(self.size), "crop_pct": float(self.crop_pct), "interpolation": self.interpolation}

    @classmethod
    def from_json(cls, data):
        return cls(tuple(data["size"]), float(data["crop_pct"]), str(data["interpolation"]))


def default_crop_pct(size):
    """ImageNet's 0.875 for photo-sized inputs; the whole image for thumbnails (CIFAR's 32x32 would be zoomed)."""
    return CROP_PCT if min(size) >= 96 else 1.0


def write_transform(path, transform):
    """Record ``transform`` inside the .keras file ``path`` (an extra zip member)."""
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(TRANSFORM_MEMBER, json.dumps(transform.to_json()))


def read_transform(path):
    """The Transform stored in a .keras file by ``write_transform``, or None; ValueError naming the file if the
    stored one is out of bounds (a size of 10**5 would exhaust memory at the first image)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            if TRANSFORM_MEMBER not in archive.namelist():
                return None
            data = json.loads(archive.read(TRANSFORM_MEMBER))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError):
        return None
    try:
        return Transform.from_json(data)
    except (KeyError, TypeError):
        return None
    except ValueError as exc:
        raise ValueError(f"{path}: its recorded evaluation transform is invalid ({first_line(exc)})") from None


def write_labels(path, names):
    """Record the class names (in output order) inside the .keras file ``path``."""
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(LABELS_MEMBER, "".join(f"{name}\n" for name in names))


def read_labels(path):
    """The class names stored by ``write_labels``, or None."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            if LABELS_MEMBER not in archive.namelist():
                return None
            return tuple(archive.read(LABELS_MEMBER).decode("utf-8").splitlines())
    except (zipfile.BadZipFile, UnicodeDecodeError):
        return None


def transform_image(image, transform):
    """TensorFlow op (eager or inside tf.data): RGB image (H, W, 3) -> float32 ``transform.size`` crop.

    Keeps the aspect ratio, scales so the image covers ``size / crop_pct`` (the short side goes to 256 for
    224 at 0.875), resizes (bicubic with antialiasing like PIL by default), then takes the centre crop.
    Rounded and clipped like an 8-bit camera frame, so it is also what a phone app would feed.
    """
    import tensorflow as tf

    height, width = transform.size
    scale_h = math.floor(height / transform.crop_pct)
    scale_w = math.floor(width / transform.crop_pct)
    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    ratio = tf.maximum(scale_h / shape[0], scale_w / shape[1])
    new_h = tf.maximum(scale_h, tf.cast(tf.floor(shape[0] * ratio), tf.int32))
    new_w = tf.maximum(scale_w, tf.cast(tf.floor(shape[1] * ratio), tf.int32))
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]),
                              method=transform.interpolation, antialias=transform.interpolation != "nearest")
    top = tf.cast(tf.round(tf.cast(new_h - height, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_w - width, tf.float64) / 2.0), tf.int32)
    crop = tf.slice(resized, tf.stack([top, left, 0]), [height, width, 3])
    return tf.clip_by_value(tf.round(crop), 0.0, 255.0)


def check_photo(shape, where="resize_and_crop"):
    if len(shape) != 3 or shape[-1] != 3 or min(shape[:2]) < 1:
        raise ValueError(f"{where}: expected an RGB image (H, W, 3), got shape {tuple(shape)}")
    if max(shape[:2]) > MAX_ASPECT_RATIO * min(shape[:2]):
        raise ValueError(f"{where}: a {shape[0]}x{shape[1]} image is not a photo (aspect ratio "
                         f"beyond {MAX_ASPECT_RATIO}:1); its centre crop would need a huge intermediate")


def resize_and_crop(image, size, transform=None):
    """RGB image (H, W, 3) in [0, 255] -> float32 (height, width, 3) of whole numbers in [0, 255], by
    ``transform`` (default: ImageNet's evaluation transform for ``size``); see ``transform_image``."""
    image = np.asarray(image)
    check_photo(image.shape)
    transform = transform or Transform(tuple(size))
    if tuple(transform.size) != tuple(size):
        raise ValueError(f"resize_and_crop: transform size {transform.size} is not {tuple(size)}")
    return transform_image(image, transform).numpy().astype(np.float32)


def decode_image(data):
    """TensorFlow op (eager or inside tf.data): encoded JPEG/PNG/BMP/GIF bytes -> RGB uint8 (H, W, 3).

    JPEGs are decoded with libjpeg's accurate integer IDCT (its own default), the pixels PIL gives to timm and
    torchvision; TensorFlow's default fast IDCT is off by up to 4 levels, about 1 on average."""
    import tensorflow as tf

    return tf.cond(tf.io.is_jpeg(data),
                   lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                   lambda: tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8))


def load_image(path, size, transform=None):
    """Decode a JPEG/PNG file to RGB and apply ``resize_and_crop``; ValueError naming the file if unreadable."""
    import tensorflow as tf

    try:
        with open(path, "rb") as f:
            data = f.read()
        return resize_and_crop(decode_image(data).numpy(), size, transform)
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
