"""The training data: labelled images from class folders or a ``.npz``, the held-out split, augmentation and
the streaming ``tf.data`` pipeline. The data order and augmentation of epoch ``e`` depend only on
``(seed, e)``, so a resumed run sees exactly the batches the uninterrupted run would have seen."""
import os
from dataclasses import dataclass

import numpy as np

from ghostnet_tf.preprocessing import class_folders, transform_image

RRC_SCALE = (0.25, 1.0)  # random-resized-crop area range for photo-sized inputs
SHUFFLE_SEED_STRIDE = 1000003
HEADERS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def _looks_like_image(path):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return any(head.startswith(h) for h in HEADERS)


def folder_samples(directory, arg):
    """(paths, labels, class names, skipped) of DIR/<class>/**/image; files that are not JPEG/PNG are skipped."""
    if not os.path.isdir(directory):
        raise ValueError(f"{arg}: no such folder: {directory!r}")
    folders = class_folders(directory)
    classes = [name for name, _ in folders]
    paths, labels, skipped = [], [], 0
    for label, (_, found) in enumerate(folders):
        for path in found:
            if _looks_like_image(path):
                paths.append(path)
                labels.append(label)
            else:
                skipped += 1
    if not paths:
        raise ValueError(f"{arg}: no readable JPEG/PNG images in class sub-folders of {directory!r}"
                         + (f" ({skipped} unreadable files skipped)" if skipped else ""))
    return paths, np.asarray(labels, np.int64), classes, skipped


def npz_samples(path, arg):
    """(images uint8 (N, H, W, 3), labels, class names) of a .npz holding 'images' and 'labels'."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not {"images", "labels"} <= set(data.files):
                raise ValueError(f"{arg}: {path!r} must hold arrays 'images' (N, H, W, 3) and 'labels' (N,); "
                                 f"it holds {sorted(data.files)}")
            images, labels = data["images"], data["labels"]
            names = [str(n) for n in data["classes"]] if "classes" in data.files else []
    except (OSError, ValueError) as exc:
        if str(exc).startswith(arg):
            raise
        raise ValueError(f"{arg}: {path!r} is not a NumPy .npz file") from None
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"{arg}: 'images' must be RGB images (N, H, W, 3), got shape {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"{arg}: 'labels' must be {len(images)} integers >= 0, got {labels.dtype} {labels.shape}")
    if images.dtype != np.uint8:
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 255:
            raise ValueError(f"{arg}: 'images' must be uint8 or float pixels in [0, 255]")
    classes = names or [str(i) for i in range(int(labels.max()) + 1)]
    return images, labels.astype(np.int64), classes


@dataclass
class Samples:
    """A labelled image source: file paths (decoded on the fly) or an in-file array."""
    source: str
    labels: np.ndarray
    classes: list
    paths: list = None
    images: np.ndarray = None
    skipped: int = 0

    def __len__(self):
        return len(self.labels)

    def subset(self, index):
        return Samples(self.source, self.labels[index], self.classes,
                       [self.paths[i] for i in index] if self.paths is not None else None,
                       self.images[index] if self.images is not None else None, 0)


def read_samples(spec, arg):
    spec = os.fspath(spec)
    if os.path.isdir(spec):
        paths, labels, classes, skipped = folder_samples(spec, arg)
        return Samples(spec, labels, classes, paths=paths, skipped=skipped)
    if not os.path.exists(spec):
        raise ValueError(f"{arg}: no such file or directory: {spec!r}")
    if spec.lower().endswith(".npz"):
        images, labels, classes = npz_samples(spec, arg)
        return Samples(spec, labels, classes, images=images)
    raise ValueError(f"{arg}: expected a folder with one sub-folder per class or a .npz file, got {spec!r}")


def split(samples, fraction, seed):
    """(train, val): a fixed random ``fraction`` of every class goes to validation."""
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(samples.labels):
        index = np.flatnonzero(samples.labels == label)
        count = int(round(fraction * len(index)))
        val.extend(rng.permutation(index)[:count].tolist())
    val = np.sort(np.asarray(val, np.int64))
    train = np.setdiff1d(np.arange(len(samples)), val)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"--val-split {fraction}: leaves no {'training' if len(train) == 0 else 'validation'} "
                         f"images out of {len(samples)}")
    return samples.subset(train), samples.subset(val)


def load_data(config):
    """(all samples, training set, validation set or None) of ``config``'s DATA, --val and --val-split, checked
    against its --classes and --batch-size; sets ``config.classes`` (from the data unless given) and
    ``config.class_names``."""
    samples = read_samples(config.data, "DATA")
    if config.val:
        train_set, val_set = samples, read_samples(config.val, "--val")
    elif config.val_split:
        train_set, val_set = split(samples, config.val_split, config.seed)
    else:
        train_set, val_set = samples, None
    present = np.unique(train_set.labels)
    if len(present) < 2:
        raise ValueError(f"DATA: {config.data!r} has {len(present)} class(es); training a classifier needs at least 2")
    classes = config.classes or int(samples.labels.max()) + 1
    if samples.labels.max() >= classes:
        raise ValueError(f"--classes {classes}: the data has labels up to {int(samples.labels.max())}")
    if val_set is not None and val_set.labels.max() >= classes:
        raise ValueError(f"--val: labels up to {int(val_set.labels.max())} but the model has {classes} classes")
    if len(train_set) < config.batch_size:
        raise ValueError(f"--batch-size {config.batch_size}: larger than the {len(train_set)} training images")
    config.classes = classes
    config.class_names = list(samples.classes)
    return samples, train_set, val_set


def _decode(samples):
    """A dataset of (uint8 image, label) streaming from ``samples``; undecodable files are dropped."""
    import tensorflow as tf

    labels = tf.constant(samples.labels, tf.int64)
    if samples.paths is not None:
        paths = tf.constant(samples.paths)

        def load(i):
            data = tf.io.read_file(paths[i])
            image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
            return image, labels[i]
        return load
    images = tf.constant(samples.images.astype(np.uint8) if samples.images.dtype != np.uint8 else samples.images)
    return lambda i: (images[i], labels[i])


def augment(image, transform, seed):
    """Training augmentation through the model's transform: for thumbnails (crop_pct 1), the transform then a
    reflect-padded random crop (1/8 of the side); for photos, a random-resized crop of 25-100 % of the area
    resized like the transform. Then a random horizontal flip. ``seed``: a stateless (2,) seed."""
    import tensorflow as tf

    height, width = transform.size
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if transform.crop_pct >= 1.0:
        image = transform_image(image, transform)
        pad_h, pad_w = max(1, height // 8), max(1, width // 8)
        image = tf.pad(image, [[pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(image, [height, width, 3], seed=seeds[0])
    else:
        begin, box_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image), tf.zeros([1, 0, 4]), seed=seeds[0], area_range=RRC_SCALE,
            aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True)
        image = tf.slice(image, begin, box_size)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width), method=transform.interpolation,
                                antialias=transform.interpolation != "nearest")
        image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def _shard_by_element(ds):
    """Across workers, each takes its share of every global batch (the stream has no files to split by);
    a no-op on one host."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def make_dataset(samples, transform, batch_size, classes, training, seed=0, first_epoch=0, epochs=1):
    """Batches of (RGB float32 [0, 255] images, one-hot labels). Training: epochs ``first_epoch``..``epochs-1``
    back to back, each shuffled and augmented by stateless ops seeded with (seed, epoch), full batches only.
    Evaluation: one pass in order through the transform."""
    import tensorflow as tf

    load = _decode(samples)
    count = len(samples)

    def one_hot(image, label):
        return image, tf.one_hot(label, classes)

    if not training:
        ds = tf.data.Dataset.range(count).map(lambda i: load(i), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.ignore_errors().map(lambda im, lab: (transform_image(im, transform), lab),
                                    num_parallel_calls=tf.data.AUTOTUNE)
        return _shard_by_element(ds.map(one_hot).batch(batch_size).prefetch(tf.data.AUTOTUNE))

    per_epoch = count // batch_size * batch_size  # whole batches only: epoch e starts at batch e * steps

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64),
                                                         seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order[:per_epoch]).map(lambda i: (i, epoch))

    def load_augmented(i, epoch):
        image, label = load(i)
        step_seed = tf.stack([epoch * SHUFFLE_SEED_STRIDE + tf.cast(seed, tf.int64), i])
        return augment(image, transform, step_seed), label

    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_order)
    ds = ds.map(load_augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return _shard_by_element(ds.map(one_hot).batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
