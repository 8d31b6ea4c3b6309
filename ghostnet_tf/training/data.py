"""The training data: labelled images from class folders or a ``.npz``, the held-out split, augmentation and
the streaming ``tf.data`` pipeline. The data order and augmentation of epoch ``e`` depend only on
``(seed, e)``, so a resumed run sees exactly the batches the uninterrupted run would have seen."""
import os
from dataclasses import dataclass

import numpy as np

from ghostnet_tf.cliutil import UsageError, check_input_file
from ghostnet_tf.preprocessing import MAX_ASPECT_RATIO, check_photo, class_folders, decode_image, transform_image
from ghostnet_tf.spec import MAX_CLASSES

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


def _read_image(path):
    """The one decoder of the run: the check before training and the stream decode alike."""
    import tensorflow as tf

    return decode_image(tf.io.read_file(path))


def _usable(paths):
    """The indices of ``paths`` that decode (in parallel) to images of photo proportions. Checked before training
    so that a corrupt file is counted as skipped instead of vanishing from the stream, which would shift every
    later batch and cut the last epoch short; a strip (beyond MAX_ASPECT_RATIO) would need a huge resize."""
    import tensorflow as tf

    if not paths:
        return set()
    names = tf.constant(paths)
    shapes = tf.data.Dataset.range(len(paths)).map(lambda i: (i, tf.shape(_read_image(names[i]))[:2]),
                                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return {int(i) for i, (height, width) in shapes.ignore_errors().as_numpy_iterator()
            if max(height, width) <= MAX_ASPECT_RATIO * min(height, width)}


def _refuse_empty_classes(folders, counts, unreadable, arg):
    """Every class folder must give images: an empty one would be a model output never trained (first or
    middle folder) or a class name without an output (last folder)."""
    for (path, _), count, bad in zip(folders, counts, unreadable):
        if count == 0:
            raise ValueError(f"{arg}: class folder {path!r} has no readable JPEG/PNG images"
                             + (f" ({bad} unreadable files skipped)" if bad else "")
                             + "; add images or remove the folder")


def folder_samples(directory, arg):
    """(paths, labels, class names, skipped) of DIR/<class>/**/image; files that are not JPEG/PNG, do not decode
    or are not of photo proportions are skipped (and counted); a class folder without images is refused."""
    if not os.path.isdir(directory):
        raise ValueError(f"{arg}: no such folder: {directory!r}")
    folders = [(os.path.join(directory, name), found) for name, found in class_folders(directory, arg)]
    if not folders:
        raise ValueError(f"{arg}: no readable JPEG/PNG images in class sub-folders of {directory!r}")
    _refuse_empty_classes(folders, [len(found) for _, found in folders], [0] * len(folders), arg)
    found = [(path, label) for label, (_, paths) in enumerate(folders) for path in paths]
    headed = [k for k, (path, _) in enumerate(found) if _looks_like_image(path)]
    usable = sorted(headed[k] for k in _usable([found[k][0] for k in headed]))
    labels = np.asarray([found[k][1] for k in usable], np.int64)
    counts = np.bincount(labels, minlength=len(folders))
    _refuse_empty_classes(folders, counts, [len(paths) - c for (_, paths), c in zip(folders, counts)], arg)
    return [found[k][0] for k in usable], labels, [os.path.basename(path) for path, _ in folders], \
        len(found) - len(usable)


def _class_names(data, arg, path):
    """The optional 'classes' array of a .npz: distinct names, at most MAX_CLASSES."""
    if "classes" not in data.files:
        return []
    names = [str(n) for n in np.ravel(data["classes"])]
    if len(names) > MAX_CLASSES or len(set(names)) != len(names):
        raise ValueError(f"{arg}: 'classes' of {path!r} must be at most {MAX_CLASSES:,} distinct class names, "
                         f"got {len(names)} ({len(set(names))} distinct)")
    return names


def _check_labels(labels, count, names, arg, path):
    """Labels are class indices: N integers in [0, classes), classes = the file's class names or MAX_CLASSES
    (a stray 10**12 would otherwise become a model of 10**12 outputs)."""
    limit = len(names) or MAX_CLASSES
    integers = labels.shape == (count,) and np.issubdtype(labels.dtype, np.integer)
    if not integers or labels.min() < 0 or labels.max() >= limit:
        got = f"values {labels.min()}..{labels.max()}" if integers else f"{labels.dtype} of shape {labels.shape}"
        why = f"the file's {len(names)} class names" if names else f"at most {MAX_CLASSES:,} classes"
        raise ValueError(f"{arg}: 'labels' of {path!r} must be {count} integers from 0 to {limit - 1:,} ({why}), "
                         f"got {got}")


def npz_samples(path, arg):
    """(images uint8 (N, H, W, 3), labels, class names or [] if the file has none) of a .npz holding 'images'
    and 'labels' (and optionally 'classes')."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not {"images", "labels"} <= set(data.files):
                raise ValueError(f"{arg}: {path!r} must hold arrays 'images' (N, H, W, 3) and 'labels' (N,); "
                                 f"it holds {sorted(data.files)}")
            images, labels = data["images"], data["labels"]
            names = _class_names(data, arg, path)
    except (OSError, ValueError) as exc:
        if str(exc).startswith(arg):
            raise
        raise ValueError(f"{arg}: {path!r} is not a NumPy .npz file") from None
    if images.ndim != 4 or images.shape[-1] != 3 or 0 in images.shape:
        raise ValueError(f"{arg}: 'images' of {path!r} must be RGB images (N, H, W, 3), got shape {images.shape}")
    check_photo(images.shape[1:], f"{arg}: {path!r}")
    _check_labels(labels, len(images), names, arg, path)
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all() or images.min() < 0 \
                or images.max() > 255:
            raise ValueError(f"{arg}: 'images' of {path!r} must be uint8 or float pixels in [0, 255]")
    return images, labels.astype(np.int64), names


@dataclass
class Samples:
    """A labelled image source: file paths (decoded on the fly) or an in-file array. ``classes``: the class names
    (folder names, a .npz's 'classes'), empty for a .npz without names."""
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
    """The Samples of a class folder or a .npz (a regular file: a FIFO would hang, /dev/zero fill memory)."""
    spec = os.fspath(spec)
    if os.path.isdir(spec):
        paths, labels, classes, skipped = folder_samples(spec, arg)
        return Samples(spec, labels, classes, paths=paths, skipped=skipped)
    if not os.path.lexists(spec):
        raise ValueError(f"{arg}: no such file or directory: {spec!r}")
    if not spec.lower().endswith(".npz"):
        raise ValueError(f"{arg}: expected a folder with one sub-folder per class or a .npz file, got {spec!r}")
    try:
        check_input_file(spec, arg)
    except UsageError as exc:  # the training API raises ValueError for every bad input
        raise ValueError(str(exc)) from None
    images, labels, classes = npz_samples(spec, arg)
    return Samples(spec, labels, classes, images=images)


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


def _class_count(config, samples):
    """The model's outputs: one per named class (folder or .npz name; --classes must agree), else --classes or
    the largest label + 1; so that outputs and class names always correspond."""
    labels_max = int(samples.labels.max())
    if samples.classes:
        named = len(samples.classes)
        if config.classes and config.classes != named:
            kind = "class folders" if samples.paths is not None else "class names"
            raise ValueError(f"--classes {config.classes}: DATA has {named} {kind}; drop --classes or give {named}")
        return named
    classes = config.classes or labels_max + 1
    if labels_max >= classes:
        raise ValueError(f"--classes {classes}: the data has labels up to {labels_max}")
    return classes


def _check_val_classes(val_set, names, classes, source):
    """--val has the training classes: the same names (label i means the same class in both), or labels that
    fit the model when either side has no names."""
    if val_set.classes and names and val_set.classes != names:
        extra = [c for c in val_set.classes if c not in names]
        missing = [c for c in names if c not in val_set.classes]
        why = (f"has class {extra[0]!r}, which DATA does not have" if extra else
               f"lacks class {missing[0]!r} of DATA" if missing else "lists the classes of DATA in another order")
        raise ValueError(f"--val: {source!r} {why}; validation needs exactly the training classes")
    if val_set.labels.max() >= classes:
        raise ValueError(f"--val: labels up to {int(val_set.labels.max())} but the model has {classes} classes")


def load_data(config):
    """(all samples, training set, validation set or None) of ``config``'s DATA, --val and --val-split, checked
    against its --classes and --batch-size; sets ``config.classes`` (from the data unless given) and
    ``config.class_names`` (one per output)."""
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
    classes = _class_count(config, samples)
    names = list(samples.classes) or [str(i) for i in range(classes)]
    if config.val:
        _check_val_classes(val_set, samples.classes, classes, config.val)
    if len(train_set) < config.batch_size:
        raise ValueError(f"--batch-size {config.batch_size}: larger than the {len(train_set)} training images")
    config.classes = classes
    config.class_names = names
    return samples, train_set, val_set


def _decode(samples):
    """``i -> (uint8 image, label)`` of ``samples``. The files were checked to decode (``folder_samples``), so none
    is dropped: a file that breaks during the run stops it rather than shifting the epochs."""
    import tensorflow as tf

    labels = tf.constant(samples.labels, tf.int64)
    if samples.paths is not None:
        paths = tf.constant(samples.paths)
        return lambda i: (_read_image(paths[i]), labels[i])
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
        ds = ds.map(lambda im, lab: (transform_image(im, transform), lab),
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
    ds = ds.map(load_augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _shard_by_element(ds.map(one_hot).batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
