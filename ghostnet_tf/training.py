"""Train or fine-tune a GhostNet on an image folder (one sub-folder per class) or a ``.npz`` of images and labels.

A streaming ``tf.data`` pipeline (decode, the model's evaluation transform, augmentation, prefetch), Keras'
own ``fit`` (under ``tf.distribute.MirroredStrategy`` with several devices), AdamW with linear warm-up and
cosine decay. Per epoch: ``OUT.last.keras`` (with the optimizer state, for ``--resume``), ``OUT.keras`` (the
best epoch by validation top-1, the last one without validation), ``OUT.log.csv`` and ``OUT.report.json``,
each written atomically. The data order and augmentation of epoch ``e`` depend only on ``(seed, e)``, so a
resumed run sees exactly the batches the uninterrupted run would have seen.
"""
import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ghostnet_tf.files import atomic_path, check_writable, write_atomic
from ghostnet_tf.preprocessing import (Transform, class_folders, default_crop_pct, transform_image, write_labels,
                                       write_transform)

WARMUP_EPOCHS = 1.0
RRC_SCALE = (0.25, 1.0)  # random-resized-crop area range for photo-sized inputs
SHUFFLE_SEED_STRIDE = 1000003
HEADERS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@dataclass
class TrainConfig:
    width: float = 1.0
    input_size: tuple = (32, 32)
    classes: int = 0  # 0: from the data
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    val_split: float = 0.0
    weights: str = None
    freeze_backbone: bool = False
    seed: int = 0
    crop_pct: float = None  # None: default_crop_pct(input_size)
    interpolation: str = "bicubic"
    dropout: float = 0.2
    devices: int = None  # None: every GPU (MirroredStrategy if > 1), else the CPU
    data: str = None
    val: str = None
    class_names: list = field(default_factory=list)


def output_paths(output):
    """OUT.keras -> the files of a run: best/final model, last checkpoint, CSV log, JSON report."""
    stem = output[:-len(".keras")] if output.endswith(".keras") else output
    return {"best": output, "last": f"{stem}.last.keras", "log": f"{stem}.log.csv", "report": f"{stem}.report.json"}


# ---------------------------------------------------------------- data

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
        return ds.map(one_hot).batch(batch_size).prefetch(tf.data.AUTOTUNE)

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
    return ds.map(one_hot).batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- schedule and model

def warmup_cosine(peak, warmup_steps, total_steps):
    from ghostnet_tf.schedule import WarmupCosine

    return WarmupCosine(peak, warmup_steps, total_steps)


def ghostnet_builder(config):
    """The model ``ghostnet train`` trains: a GhostNet of ``config.width`` for ``config.classes`` classes."""
    from ghostnet_tf.model import GhostNet

    return GhostNet(width=config.width, input_shape=(*config.input_size, 3), classes=config.classes,
                    dropout_rate=config.dropout)


def build_model(config, steps_per_epoch, builder=ghostnet_builder):
    """``builder(config)`` -> an uncompiled Keras model; with --weights, --freeze-backbone and the optimizer."""
    import keras

    model = builder(config)
    if config.weights:
        load_checkpoint(model, config.weights)
    if config.freeze_backbone:
        for layer in model.layers:
            # Frozen layers (BatchNorm included) run in inference mode in Keras 3.
            layer.trainable = layer.name in ("conv_head", "classifier")
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(WARMUP_EPOCHS * steps_per_epoch), total // 2)
    optimizer = keras.optimizers.AdamW(learning_rate=warmup_cosine(config.lr, warmup, total),
                                       weight_decay=config.weight_decay)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return model


def load_checkpoint(model, path):
    """Start from a checkpoint: a GhostNet .keras file (weights by layer, the classifier only if it fits) or
    any file ``load_weights`` reads (ImageNet weights get a fresh classifier for other ``classes``)."""
    import keras

    from ghostnet_tf.weights import assign_state_dict, load_weights, state_dict_from_model

    if not os.path.isfile(path):
        raise ValueError(f"--weights: no such file: {path!r}")
    try:
        if path.endswith(".keras"):
            source = keras.models.load_model(path, compile=False)
            state = state_dict_from_model(source)
            if source.output_shape[-1] != model.output_shape[-1]:  # a new head: keep the fresh classifier
                own = state_dict_from_model(model)
                state.update({k: v for k, v in own.items() if k.startswith("classifier.")})
            assign_state_dict(model, state, source=path)
        else:
            load_weights(model, path)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith("--weights") else f"--weights: {message}") from None


# ---------------------------------------------------------------- devices

def configure_devices(devices):
    """A distribution strategy: MirroredStrategy over ``devices`` GPUs, or over ``devices`` logical CPUs when
    there is no GPU (must run before TensorFlow initialises its devices); the default strategy for one device."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if devices is None:
        devices = len(gpus) if len(gpus) > 1 else 1
    if devices == 1:
        return tf.distribute.get_strategy()
    if gpus:
        if devices > len(gpus):
            raise ValueError(f"--devices {devices}: only {len(gpus)} GPUs are visible")
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(devices)])
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) < devices:
            raise ValueError(f"--devices {devices}: TensorFlow is already initialised with "
                             f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s); start a new process") from None
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)])


# ---------------------------------------------------------------- recording

def save_model(model, path, transform, optimizer=True, labels=()):
    """``model.save`` through a temporary file, with the evaluation transform and class names recorded inside.
    ``optimizer=False`` leaves the optimizer state out (the best model is for deployment: no AdamW moments)."""
    import keras

    if not optimizer:  # the same layers in an uncompiled model: no optimizer variables to save
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    with atomic_path(path) as tmp:
        model.save(tmp)
        write_transform(tmp, transform)
        if labels:
            write_labels(tmp, labels)


def load_model(path):
    """A .keras model saved by the run (with the optimizer, for ``last``); ``convert.source.ModelSource.from_file``
    also reads the transform and class names recorded inside."""
    import keras

    return keras.models.load_model(path)  # the package's classes are registered on Keras import


def _recorder_class():
    import keras

    class Recorder(keras.callbacks.Callback):
        """Per epoch: wall time, images/s, learning rate; the checkpoints, the CSV log and the JSON report."""

        def __init__(self, run):
            super().__init__()
            self.run = run

        def on_epoch_begin(self, epoch, logs=None):
            # Dropout draws from seed-generator variables whose saved state does not bring back the stream;
            # re-seed them from (seed, epoch) so a resumed epoch drops exactly the units it would have.
            for variable in self.model.variables:
                if "seed_generator_state" in variable.path:
                    value = np.asarray(variable)
                    value[...] = 0
                    value.flat[0] = (self.run.config.seed * SHUFFLE_SEED_STRIDE + epoch) % (2 ** 31 - 1)
                    variable.assign(value)
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.run.end_epoch(self.model, epoch, dict(logs or {}), time.perf_counter() - self.start)

    return Recorder


class Run:
    def __init__(self, config, paths, transform, train_count, steps_per_epoch, history=None, show=print):
        self.config, self.paths, self.transform = config, paths, transform
        self.train_count, self.steps_per_epoch = train_count, steps_per_epoch
        self.history = list(history or [])
        self.show = show
        self.skipped = 0

    @property
    def best(self):
        key = "val_accuracy" if self.history and "val_accuracy" in self.history[0] else None
        if not self.history:
            return None
        if key is None:
            return self.history[-1]
        return max(self.history, key=lambda row: (row[key], -row["epoch"]))

    def end_epoch(self, model, epoch, logs, seconds):
        lr = model.optimizer.learning_rate
        row = {"epoch": epoch + 1, "loss": float(logs.get("loss", math.nan)),
               "accuracy": float(logs.get("accuracy", math.nan)), "lr": float(np.asarray(lr))}
        if "val_loss" in logs:
            row["val_loss"] = float(logs["val_loss"])
            row["val_accuracy"] = float(logs["val_accuracy"])
        row["seconds"] = round(seconds, 2)
        row["images_per_s"] = round(self.steps_per_epoch * self.config.batch_size / max(seconds, 1e-9), 1)
        if not all(math.isfinite(row[k]) for k in ("loss",)):
            raise ValueError(f"training diverged at epoch {epoch + 1} (loss {row['loss']}); "
                             f"try a smaller --lr than {self.config.lr}")
        self.history.append(row)
        labels = self.config.class_names
        save_model(model, self.paths["last"], self.transform, labels=labels)
        if self.best is row:
            save_model(model, self.paths["best"], self.transform, optimizer=False, labels=labels)
        self.write_log()
        self.write_report()

    def write_log(self):
        buffer = io.StringIO()
        columns = list(self.history[0])
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows(self.history)
        write_atomic(self.paths["log"], buffer.getvalue().encode())

    def report(self):
        best = self.best
        return {"config": {**asdict(self.config), "input_size": list(self.config.input_size)},
                "transform": self.transform.to_json(), "train_images": self.train_count,
                "steps_per_epoch": self.steps_per_epoch, "skipped": self.skipped, "epochs_done": len(self.history),
                "complete": len(self.history) >= self.config.epochs,
                "best_epoch": best["epoch"] if best else None,
                "wall_seconds": round(sum(r["seconds"] for r in self.history), 1),
                "files": self.paths, "history": self.history}

    def write_report(self):
        write_atomic(self.paths["report"], (json.dumps(self.report(), indent=2) + "\n").encode())


# ---------------------------------------------------------------- entry point

def _check_config(config):
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError("--epochs and --batch-size must be >= 1")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError(f"--lr must be a positive number, got {config.lr}")
    if config.weight_decay < 0 or not 0 <= config.label_smoothing < 1:
        raise ValueError("--weight-decay must be >= 0 and --label-smoothing in [0, 1)")
    if not 0 <= config.val_split < 1:
        raise ValueError(f"--val-split must be in [0, 1), got {config.val_split}")
    if config.val and config.val_split:
        raise ValueError("give --val DIR or --val-split, not both")


def train(data, output, config=None, resume=False, show_progress=True, show=print, builder=ghostnet_builder,
          **options):
    """Train a GhostNet on ``data`` (class folders or .npz) and write ``output`` (.keras) and its companions
    (``output_paths``). Returns the report (dict). ``options`` set fields of ``TrainConfig``; ``builder(config)``
    makes the (uncompiled) model, a GhostNet by default (a resumed run reloads its own)."""
    output = os.fspath(output)
    if not output.endswith(".keras"):
        raise ValueError(f"-o/--output: the model is saved as a .keras file, got {output!r}")
    paths = output_paths(output)
    for name in ("best", "last", "log", "report"):
        check_writable(paths[name], "-o/--output")
    history = []
    if resume:
        if not (os.path.isfile(paths["report"]) and os.path.isfile(paths["last"])):
            raise ValueError(f"--resume: no interrupted run at {output!r} (expected {paths['report']!r} and "
                             f"{paths['last']!r})")
        with open(paths["report"]) as f:
            previous = json.load(f)
        saved = previous["config"]
        saved["input_size"] = tuple(saved["input_size"])
        config = TrainConfig(**saved)
        if "epochs" in options and options["epochs"] is not None:
            config.epochs = options["epochs"]
        if options.get("devices") is not None:
            config.devices = options["devices"]
        history = previous["history"]
        data = config.data
        if len(history) >= config.epochs:
            raise ValueError(f"--resume: the run at {output!r} already finished its {config.epochs} epochs")
    else:
        config = config or TrainConfig()
        for key, value in options.items():
            if value is not None:
                setattr(config, key, value)
        config.input_size = tuple(config.input_size)
        config.data = os.fspath(data)
    _check_config(config)
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
    config.classes = classes
    config.class_names = list(samples.classes)
    if config.crop_pct is None:
        config.crop_pct = default_crop_pct(config.input_size)
    transform = Transform(config.input_size, config.crop_pct, config.interpolation)
    if len(train_set) < config.batch_size:
        raise ValueError(f"--batch-size {config.batch_size}: larger than the {len(train_set)} training images")
    if config.weights and not os.path.isfile(config.weights):
        raise ValueError(f"--weights: no such file: {config.weights!r}")

    strategy = configure_devices(config.devices)
    import keras

    keras.utils.set_random_seed(config.seed)  # initial weights and dropout: the same run every time
    steps = len(train_set) // config.batch_size
    first_epoch = len(history)
    with strategy.scope():
        if resume:
            model = load_model(paths["last"])
        else:
            model = build_model(config, steps, builder)
    if resume:
        # The optimizer state (step count, moments) comes back with the model; check it is where the log ends.
        done = int(np.asarray(model.optimizer.iterations))
        if done != first_epoch * steps:
            raise ValueError(f"--resume: {paths['last']!r} stopped after {done} steps, the log after "
                             f"{first_epoch} epochs of {steps}")
    train_ds = make_dataset(train_set, transform, config.batch_size, classes, True, config.seed, first_epoch,
                            config.epochs)
    val_ds = make_dataset(val_set, transform, config.batch_size, classes, False) if val_set is not None else None
    run = Run(config, paths, transform, len(train_set), steps, history, show)
    skipped = samples.skipped + (val_set.skipped if config.val else 0)
    run.skipped = skipped
    show(f"training {model.name} ({config.width}x, {transform.size[0]}x{transform.size[1]}, crop {transform.crop_pct:g}, "
         f"{transform.interpolation}) on {len(train_set)} images of {classes} classes"
         + (f", validating on {len(val_set)}" if val_set is not None else "")
         + (f", {skipped} unreadable files skipped" if skipped else "")
         + f"; {strategy.num_replicas_in_sync} device(s); epochs {first_epoch + 1}..{config.epochs}")
    import sys
    import warnings

    warnings.filterwarnings("ignore", message=".*(shuffle=True|ran out of data).*")  # the stream is shuffled/finite by design
    model.fit(train_ds, epochs=config.epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
              validation_data=val_ds, callbacks=[_recorder_class()(run)],
              verbose=(1 if sys.stdout.isatty() else 2) if show_progress else 0)
    return run.report()
