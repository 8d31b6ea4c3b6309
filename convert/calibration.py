"""Image sources for calibration and for fidelity checks: a folder, an array file, or a built-in set.

Every source yields RGB images in [0, 255] (N, H, W, 3), prepared by the evaluation preprocessing of
``ghostnet_tf.preprocessing``, whose ``model_inputs`` then turns them into what the model expects.
"""
import os
from dataclasses import dataclass

import numpy as np

from convert.progress import Progress
from ghostnet_tf.cliutil import check_input_file
from ghostnet_tf.preprocessing import find_images, load_image, resize_and_crop, synthetic_photo

# Seeds of the built-in synthetic sets: calibration and evaluation never share an image.
CALIBRATION_SEED = 0
EVALUATION_SEED = 1
FLOAT_DTYPES = (np.float16, np.float32, np.float64)


@dataclass
class ImageSet:
    images: np.ndarray  # (N, H, W, 3) float32, RGB in [0, 255]
    source: str  # folder or file path, or "built-in"
    skipped: int = 0  # unreadable files left out

    def describe(self):
        return {"source": self.source, "count": len(self.images), "skipped": self.skipped}


# What each image set is for, and the option that asks for its size: for the warning of a set smaller than asked.
IMAGE_SETS = {"--calibration": ("--calibration-steps", "int8 ranges calibrated on few images are unreliable"),
              "--eval-images": ("--eval-count", "the agreement and SQNR figures rest on few images")}


def shortfall(images, requested, option):
    """The warning for an image set with fewer images than asked (None if it has them all)."""
    found = len(images.images)
    if found >= requested:
        return None
    count_option, why = IMAGE_SETS[option]
    return (f"{option}: {found} image{'s' * (found != 1)} from {images.source} where {count_option} asked for "
            f"{requested}: {why}; give more images or a smaller {count_option}")


def takes_pixels(model):
    """True if the model normalizes inside (its input feeds a Normalization or Rescaling layer), as
    GhostNet(include_preprocessing=True) does: it then takes raw [0, 255] pixels."""
    from keras import layers

    first = [layer for layer in model.layers
             if not isinstance(layer, layers.InputLayer) and any(t is layer_input for t in model.inputs
                                                                  for layer_input in _layer_inputs(layer))]
    return bool(first) and all(isinstance(layer, (layers.Normalization, layers.Rescaling)) for layer in first)


def _layer_inputs(layer):
    try:
        inputs = layer.input
    except (AttributeError, ValueError):  # a layer used at several places has no single input
        return []
    return inputs if isinstance(inputs, (list, tuple)) else [inputs]


def load_folder(directory, size, limit, arg, show_progress=True, transform=None):
    """Up to ``limit`` readable images of ``directory`` in sorted order, prepared by ``transform`` (default:
    ImageNet's evaluation transform); corrupt files are skipped and counted."""
    paths = find_images(directory)
    if not paths:
        raise ValueError(f"{arg}: no JPEG/PNG images found in {directory!r}")
    images, skipped, first_failure = [], 0, None
    wanted = min(limit, len(paths)) if limit else len(paths)
    bar = Progress(wanted, f"loading {arg}", enabled=show_progress)
    for path in paths:
        if len(images) == wanted:
            break
        try:
            images.append(load_image(path, size, transform))
            bar.step()
        except ValueError as exc:
            skipped += 1
            first_failure = first_failure or str(exc)
    bar.close()
    if not images:
        raise ValueError(f"{arg}: none of the {skipped} images in {directory!r} could be decoded (the first: "
                         f"{first_failure})")
    return ImageSet(np.stack(images), os.fspath(directory), skipped)


def load_array(path, size, limit, arg, transform=None):
    """Images from a .npy file, or a .npz holding one array (or one named ``images``): (N, H, W, 3) RGB in [0, 255]
    (see ``check_images`` for arrays of another size)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError):  # numpy's text for a non-array file suggests unpickling it: never do that
        raise ValueError(f"{arg}: {path!r} is not a NumPy array file (expected .npy/.npz written by numpy.save or "
                         "numpy.savez, holding uint8 or float images)") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            names = list(data.files)
            if len(names) != 1 and "images" not in names:
                raise ValueError(f"{arg}: {path!r} holds arrays {names}; expected one array or one named 'images'")
            array = data["images" if "images" in names else names[0]]
    else:
        array = data
    return ImageSet(check_images(array[:limit or None], size, arg, transform), os.fspath(path))


def check_images(array, size, arg, transform=None):
    """Validate an image array: shape (N, H, W, 3), uint8 or float, finite values in [0, 255]. Images at
    ``size`` are taken as they are; others go through ``transform`` (a model's own, e.g. 32x32 CIFAR images
    resized for a 64x64 model) like image files, and are an error without one."""
    array = np.asarray(array)
    expected = f"(N, {size[0]}, {size[1]}, 3)"
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0 or (
            array.shape[1:3] != tuple(size) and transform is None):
        raise ValueError(f"{arg}: expected RGB images of shape {expected}, got shape {array.shape}")
    if array.dtype != np.uint8 and array.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{arg}: expected dtype uint8 or float, got {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{arg}: the images contain NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
        raise ValueError(f"{arg}: expected pixel values in [0, 255], got [{low:g}, {high:g}] "
                         "(give raw RGB pixels, not normalized images)")
    if high <= 1.0:
        raise ValueError(f"{arg}: pixel values lie in [{low:g}, {high:g}]; expected [0, 255] "
                         "(multiply [0, 1] images by 255)")
    if array.shape[1:3] != tuple(size):
        try:
            array = np.stack([resize_and_crop(image, size, transform) for image in array])
        except ValueError as exc:
            raise ValueError(f"{arg}: {exc}") from None
    return array


def synthetic_images(count, size, seed, transform=None):
    """Deterministic natural-ish images (``synthetic_photo``), larger than ``size`` and not square so the
    crop path runs, prepared like real photos."""
    rng = np.random.default_rng(seed)
    raw_h, raw_w = int(size[0] / 0.8) + 16, int(size[1] / 0.7) + 16
    return ImageSet(np.stack([resize_and_crop(synthetic_photo(rng, raw_h, raw_w), size, transform) for _ in range(count)]),
                    "built-in")


def image_source(spec, size, limit, arg, seed, show_progress=True, transform=None):
    """Images from ``spec`` (None -> built-in synthetic set of ``limit`` images, folder, .npy/.npz file);
    files, synthetic images and arrays of another size are prepared by ``transform`` (a model source's
    ``transform_for(size)``), arrays at ``size`` are taken as they are."""
    if spec is None:
        return synthetic_images(limit, size, seed, transform)
    if isinstance(spec, ImageSet):
        return spec
    if isinstance(spec, np.ndarray):
        return ImageSet(check_images(spec[:limit or None], size, arg, transform), "array")
    path = os.fspath(spec)
    if os.path.isdir(path):
        return load_folder(path, size, limit, arg, show_progress, transform)
    if not os.path.exists(path):
        raise ValueError(f"{arg}: no such file or directory: {path!r}")
    check_input_file(path, arg)
    if path.lower().endswith((".npy", ".npz")):
        return load_array(path, size, limit, arg, transform)
    raise ValueError(f"{arg}: expected a folder of JPEG/PNG images or a .npy/.npz array file, got {path!r}")
