"""The files of a run, each written atomically after every epoch: ``OUT.last.keras`` (with the optimizer
state, for ``--resume``), ``OUT.keras`` (the best epoch by validation top-1, the last one without validation),
``OUT.log.csv`` and ``OUT.report.json``; starting from a checkpoint (--weights) and resuming a run."""
import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict

import numpy as np

from ghostnet_tf.files import atomic_path, check_writable, write_atomic
from ghostnet_tf.preprocessing import write_labels, write_transform
from ghostnet_tf.training.config import RESUME_OPTIONS, TrainConfig
from ghostnet_tf.training.data import SHUFFLE_SEED_STRIDE


def output_paths(output):
    """OUT.keras -> the files of a run: best/final model, last checkpoint, CSV log, JSON report."""
    stem = output[:-len(".keras")] if output.endswith(".keras") else output
    return {"best": output, "last": f"{stem}.last.keras", "log": f"{stem}.log.csv", "report": f"{stem}.report.json"}


def check_output(output, paths, writes=True):
    """A .keras output; with ``writes`` (the process keeps the files), every file of the run writable."""
    if not output.endswith(".keras"):
        raise ValueError(f"-o/--output: the model is saved as a .keras file, got {output!r}")
    for name in ("best", "last", "log", "report") if writes else ():
        check_writable(paths[name], "-o/--output")


@contextlib.contextmanager
def scratch_paths(paths):
    """The run's file names in a temporary folder, deleted afterwards: where a worker other than the chief
    writes. Every worker of a multi-worker run saves (saving reads the distributed variables together), and
    only the chief's files are kept."""
    scratch = tempfile.mkdtemp(prefix="ghostnet-worker-")
    try:
        yield {name: os.path.join(scratch, os.path.basename(path)) for name, path in paths.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


def resumed_config(output, paths, options):
    """(config, history) of the interrupted run at ``output``, with ``options``' RESUME_OPTIONS applied."""
    if not (os.path.isfile(paths["report"]) and os.path.isfile(paths["last"])):
        raise ValueError(f"--resume: no interrupted run at {output!r} (expected {paths['report']!r} and "
                         f"{paths['last']!r})")
    with open(paths["report"]) as f:
        previous = json.load(f)
    saved = previous["config"]
    saved["input_size"] = tuple(saved["input_size"])
    config = TrainConfig(**saved)
    for key in RESUME_OPTIONS:
        if options.get(key) is not None:
            setattr(config, key, options[key])
    history = previous["history"]
    if len(history) >= config.epochs:
        raise ValueError(f"--resume: the run at {output!r} already finished its {config.epochs} epochs")
    return config, history


def check_resumed(model, path, epochs_done, steps):
    """The optimizer state (step count, moments) comes back with the model; check it is where the log ends."""
    done = int(np.asarray(model.optimizer.iterations))
    if done != epochs_done * steps:
        raise ValueError(f"--resume: {path!r} stopped after {done} steps, the log after {epochs_done} epochs "
                         f"of {steps}")


def recorder(run):
    """The Keras callback of ``run``: per epoch, re-seeds dropout and records the epoch (``Run.end_epoch``)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            # Dropout draws from seed-generator variables whose saved state does not bring back the stream;
            # re-seed them from (seed, epoch) so a resumed epoch drops exactly the units it would have.
            for variable in self.model.variables:
                if "seed_generator_state" in variable.path:
                    value = np.asarray(variable)
                    value[...] = 0
                    value.flat[0] = (run.config.seed * SHUFFLE_SEED_STRIDE + epoch) % (2 ** 31 - 1)
                    variable.assign(value)
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            run.end_epoch(self.model, epoch, dict(logs or {}), time.perf_counter() - self.start)

    return Recorder()


class Run:
    """The record of a run: its history, per epoch the checkpoints, the CSV log and the JSON report. ``paths``
    are the run's files (as reported); ``write_to`` where this process writes them (``paths`` by default;
    ``scratch_paths`` on a worker other than the chief)."""

    def __init__(self, config, paths, transform, train_count, steps_per_epoch, history=None, show=print,
                 write_to=None):
        self.config, self.paths, self.transform = config, paths, transform
        self.write_to = write_to or paths
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
        save_model(model, self.write_to["last"], self.transform, labels=labels)
        if self.best is row:
            save_model(model, self.write_to["best"], self.transform, optimizer=False, labels=labels)
        self.write_log()
        self.write_report()

    def write_log(self):
        buffer = io.StringIO()
        columns = list(self.history[0])
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows(self.history)
        write_atomic(self.write_to["log"], buffer.getvalue().encode())

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
        write_atomic(self.write_to["report"], (json.dumps(self.report(), indent=2) + "\n").encode())
